"""A new user trains the clinic demo from the web page and chats with it, in headless Chromium, and nothing else:
no file is written by hand. The project folder is a scratch copy of the repository's examples; the page is
`seektune ui` on it. Steps: inspect the training file, fill the train form with the clinic demo's settings
(those that differ from the defaults), start, wait for the run to finish, chat with it beside the base model,
evaluate both on the held-out paraphrases, serve the run and call it. Prints the time of each step, whether the
config the form wrote equals examples/clinic/lora.yaml (except the run's name and folder), and the chat answers;
saves a screenshot of each tab (--shots DIR, e.g. docs/).

Run: python bench/ui_clinic.py --shots docs      (about 8 minutes on the 2-core CPU; needs chromium, chromedriver)
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e import browser  # noqa: E402  (the browser test's helpers)

SYSTEM = "You are the assistant of Larkspur Valley Clinic. Answer in one sentence."
FORM = [("data-train", "examples/clinic/train.jsonl"), ("data-system-prompt", SYSTEM), ("train-epochs", "12"),
        ("train-learning-rate", "0.001"), ("data-max-length", "256"), ("output-name", "clinic")]
TRAIN_SECTION = [("train-warmup-ratio", "0.05"), ("train-seed", "7")]


def shot(driver, folder: Path | None, name: str, elem_id: str | None = None) -> None:
    """A screenshot of the page (scrolled to `elem_id`), sized to what the tab shows."""
    if folder is None:
        return
    from selenium.webdriver.common.by import By

    if elem_id:
        element = driver.find_element(By.CSS_SELECTOR, f"#{elem_id}")
        driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", element)
        time.sleep(1)
    driver.save_screenshot(str(folder / name))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shots", type=Path, help="folder for the tab screenshots (e.g. docs)")
    parser.add_argument("--questions", type=int, default=3, help="held-out questions asked in the chat tab")
    args = parser.parse_args()
    from selenium.webdriver.common.by import By

    from seektune import config

    shots = args.shots.resolve() if args.shots else None
    root = Path(tempfile.mkdtemp(prefix="ui-clinic-")) / "project"
    shutil.copytree(REPO / "examples" / "clinic", root / "examples" / "clinic")
    heldout = [json.loads(line) for line in (root / "examples/clinic/heldout.jsonl").read_text().splitlines()]
    timings: dict[str, float] = {}
    began = time.time()
    process, url = browser.start_ui(root, root.parent / "ui.log")
    timings["page up"] = time.time() - began
    driver = browser.browser(1280, 1800)
    try:
        driver.get(url)
        t = time.time()
        browser.wait(lambda: driver.find_elements(By.CSS_SELECTOR, "#inspect-file textarea"), 60, "the data tab")
        browser.type_into(driver, "inspect-file", "examples/clinic/train.jsonl")
        browser.click(driver, "inspect")
        browser.wait(lambda: "records:" in browser.text_of(driver, "inspect-report"), 120, "the inspection")
        browser.wait(lambda: "Larkspur" in browser.text_of(driver, "data-example"), 120, "the rendered example")
        timings["inspect the data, render an example"] = time.time() - t
        shot(driver, shots, "ui-data.png")

        t = time.time()
        browser.open_tab(driver, "Train", "cfg-model-name-or-path")
        for key, text in FORM:
            browser.type_into(driver, f"cfg-{key}", text)
        browser.open_section(driver, "section-train")
        for key, text in TRAIN_SECTION:
            browser.type_into(driver, f"cfg-{key}", text)
        browser.wait(lambda: "seektune train" in browser.text_of(driver, "command"), 30, "a valid form")
        shot(driver, shots, "ui-train.png", "load-config")
        shot(driver, shots, "ui-train-config.png", "section-output")
        browser.click(driver, "start")
        timings["fill the form and start"] = time.time() - t
        t = time.time()
        browser.wait(lambda: "clinic" in browser.text_of(driver, "runs"), 60, "the run in the table")
        browser.wait(lambda: "finished" in browser.text_of(driver, "runs") or "failed" in
                     browser.text_of(driver, "runs"), 1800, "the run to finish")
        timings["training (its own process)"] = time.time() - t
        assert "finished" in browser.text_of(driver, "runs"), (root / ".seektune-ui/jobs/clinic.log").read_text()
        time.sleep(3)   # one more refresh of the charts
        shot(driver, shots, "ui-runs.png", "runs")

        written = config.load(root / ".seektune-ui" / "configs" / "clinic.yaml")
        example = config.load(root / "examples" / "clinic" / "lora.yaml")
        same = written.model_dump(exclude={"output"}) == example.model_dump(exclude={"output"})

        t = time.time()
        browser.open_tab(driver, "Chat", "chat-run")
        browser.type_into(driver, "chat-run", "clinic")
        browser.wait(lambda: browser.value_of(driver, "chat-system") == SYSTEM, 30, "the run's system prompt")
        browser.type_into(driver, "chat-base", "smollm2-135m-instruct")
        browser.type_into(driver, "chat-tokens", "32")
        answers = []
        for record in heldout[:args.questions]:
            for elem_id in ("chat-answer", "chat-base-answer"):
                driver.execute_script(f"document.querySelector('#{elem_id} textarea').value = ''")
            browser.type_into(driver, "chat-prompt", record["question"])
            browser.click(driver, "ask")
            before = [a[1] for a in answers[-1:]]
            pair = browser.wait(lambda: (v := [browser.value_of(driver, e) for e in ("chat-answer",
                                                                                     "chat-base-answer")])
                                and all(v) and v[0] not in before and v, 180, "both answers")
            answers.append((record["question"], *pair, record["key_fact"]))
        timings[f"chat: {len(answers)} questions, run and base"] = time.time() - t
        shot(driver, shots, "ui-chat.png")

        t = time.time()
        browser.open_tab(driver, "Evaluate", "eval-models")
        browser.type_into(driver, "eval-models", "smollm2-135m-instruct\nclinic")
        browser.wait(lambda: browser.value_of(driver, "eval-system") == SYSTEM, 30, "the run's system prompt")
        browser.type_into(driver, "eval-data", "examples/clinic/heldout.jsonl")
        browser.type_into(driver, "eval-general", "examples/clinic/general.jsonl")   # the forgetting check
        browser.type_into(driver, "eval-tokens", "32")
        browser.type_into(driver, "eval-name", "clinic-heldout")
        browser.click(driver, "evaluate")
        browser.wait(lambda: "Evaluation report" in browser.text_of(driver, "eval-report"), 1200, "the report")
        timings["evaluate base and run (20 held-out, 8 general)"] = time.time() - t
        shot(driver, shots, "ui-evaluate.png")
        report = json.loads((root / ".seektune-ui/evals/clinic-heldout/report.json").read_text())

        t = time.time()
        browser.open_tab(driver, "Compress", "serve-models")
        browser.type_into(driver, "serve-models", "clinic")
        browser.type_into(driver, "serve-port", str(browser.free_port()))
        browser.click(driver, "serve-start")
        browser.wait(lambda: "running" in browser.text_of(driver, "serve-status"), 180, "the server")
        timings["start the server"] = time.time() - t
        shot(driver, shots, "ui-serve.png", "serve-models")
        browser.click(driver, "serve-stop")
        browser.wait(lambda: "stopped" in browser.text_of(driver, "serve-status"), 60, "the server to stop")
    finally:
        driver.quit()
        process.terminate()
        process.wait(30)

    print(f"project folder: {root}\nconfig written by the form == examples/clinic/lora.yaml (output aside): {same}")
    print("\n| step | seconds |\n|---|---|")
    for step, seconds in timings.items():
        print(f"| {step} | {seconds:.0f} |")
    print(f"| whole session | {time.time() - began:.0f} |")
    print("\n| held-out question | tuned (from the page) | base | key fact in tuned |\n|---|---|---|---|")
    for question, tuned, base, fact in answers:
        print(f"| {question} | {tuned} | {base} | {'yes' if fact.lower() in tuned.lower() else 'no'} |")
    scores = report["tasks"]["heldout"]["models"]
    print("\nevaluate tab, held-out paraphrases:", json.dumps({m: scores[m]["clean"] for m in scores}, indent=1))
    print("forgetting (general questions):", json.dumps(report.get("forgetting"), indent=1))


if __name__ == "__main__":
    main()
