"""`seektune ui` in a real browser (headless Chromium through selenium): the page starts on a free loopback port
over a project folder; the data tab inspects the training file (format, record count, token-length histogram),
renders an example with its supervised answer and cleans the file (output and manifest downloadable); the train
form marks a wrong value beside its field, is filled for the suite's tiny Llama (a folded key included) and its
template checked; training starts as its own process and keeps going when the browser closes; a new browser sees
the run finish with its loss and lr charted; the evaluate tab reports base and run side by side; the chat tab
answers exactly what `seektune chat` answers for the run and for its base. (The compress & serve tab's commands and
detached server: tests/unit/ui/test_ui_ship.py; its clicks: bench/ui_clinic.py.)"""

import json
import shutil

import pytest
import yaml

from tests.conftest import QA
from tests.e2e import browser

pytestmark = pytest.mark.slow


@pytest.fixture()
def project(tmp_path, tiny_llama_dir):
    root = tmp_path / "project"
    shutil.copytree(tiny_llama_dir, root / "tiny-llama")
    (root / "train.jsonl").write_text("".join(json.dumps({"instruction": q, "input": "", "output": a}) + "\n"
                                              for q, a in QA))
    return root


@pytest.fixture()
def ui(project):
    pytest.importorskip("gradio")
    pytest.importorskip("selenium")
    if not (browser.CHROMIUM and browser.DRIVER):
        pytest.skip("chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")
    process, url = browser.start_ui(project, project / "ui.log")
    try:
        yield url
    finally:
        process.terminate()
        process.wait(30)


def test_train_from_the_page_then_chat_with_the_result(ui, project):
    from selenium.webdriver.common.by import By

    driver = browser.browser()
    try:
        driver.get(ui)
        browser.wait(lambda: driver.find_elements(By.CSS_SELECTOR, "#inspect-file textarea"), 30, "the data tab")
        browser.type_into(driver, "inspect-file", "train.jsonl")
        browser.click(driver, "inspect")
        report = browser.wait(lambda: "records:" in (t := browser.text_of(driver, "inspect-report")) and t, 60,
                              "the inspection report")
        assert f"records: {len(QA)}" in report and "alpaca" in browser.text_of(driver, "data-summary")
        browser.wait(lambda: driver.find_elements(By.CSS_SELECTOR, "#inspect-plot img"), 30, "the histogram")
        browser.wait(lambda: QA[0][1] in browser.text_of(driver, "data-example"), 60, "the rendered example")
        browser.click(driver, "data-run-step")   # clean, the default step
        browser.wait(lambda: driver.find_elements(By.CSS_SELECTOR, "#data-download a"), 60, "the cleaned file")
        links = [a.get_attribute("download") for a in driver.find_elements(By.CSS_SELECTOR, "#data-download a")]
        assert links == ["train.clean.jsonl", "train.clean.jsonl.manifest.json"]

        browser.open_tab(driver, "Train", "cfg-model-name-or-path")
        browser.type_into(driver, "cfg-train-max-steps", "-1")   # a bad value: the error shows beside the field
        browser.wait(lambda: "greater than or equal to 0" in browser.text_of(driver, "cfg-train-max-steps"), 30,
                     "the error beside train.max_steps")
        assert "Not valid yet" in browser.text_of(driver, "command")
        for key, text in [("model-name-or-path", "tiny-llama"), ("data-train", "train.jsonl"),
                          ("train-max-steps", "6"), ("train-learning-rate", "0.005"),
                          ("train-micro-batch-size", "2"), ("data-max-length", "64"), ("method-lora-r", "4"),
                          ("output-name", "ui-run")]:
            browser.type_into(driver, f"cfg-{key}", text)
        browser.open_section(driver, "section-train")   # a key beyond the key settings
        browser.type_into(driver, "cfg-train-warmup-ratio", "0.5")
        command = browser.wait(lambda: "seektune train" in (t := browser.text_of(driver, "command")) and t, 30,
                               "the equivalent command")
        assert "ui-run.yaml" in command and "greater than" not in browser.text_of(driver, "cfg-train-max-steps")
        browser.click(driver, "check-template")
        checked = browser.wait(lambda: "Template check" in (t := browser.text_of(driver, "template")) and t, 60,
                               "the template check")
        assert "Template check passed" in checked and QA[0][0] in checked   # a rendered training example
        browser.click(driver, "start")
        browser.wait(lambda: "ui-run" in browser.text_of(driver, "runs"), 30, "the run in the table")
    finally:
        driver.quit()   # closing the browser leaves the training process running

    written = yaml.safe_load((project / ".seektune-ui" / "configs" / "ui-run.yaml").read_text())
    assert written["train"] == {"max_steps": 6, "learning_rate": 0.005, "micro_batch_size": 2, "warmup_ratio": 0.5}
    driver = browser.browser()
    try:
        driver.get(ui)
        browser.open_tab(driver, "Train", "cfg-model-name-or-path")
        browser.wait(lambda: "finished" in browser.text_of(driver, "runs"), 180, "the run to finish")
        assert (project / "runs" / "ui-run" / "final" / "adapter_config.json").is_file()
        steps = [json.loads(line)["step"] for line in (project / "runs" / "ui-run" / "metrics.jsonl").read_text()
                 .splitlines() if "loss" in json.loads(line)]
        assert steps[-1] == 6 and "6" in browser.text_of(driver, "runs")
        for chart in ("loss-plot", "lr-plot"):
            browser.wait(lambda: driver.find_elements(By.CSS_SELECTOR, f"#{chart} canvas, #{chart} svg"), 30, chart)

        browser.open_tab(driver, "Evaluate", "eval-models")
        browser.type_into(driver, "eval-models", "tiny-llama\nui-run")
        browser.type_into(driver, "eval-data", "train.jsonl")
        browser.type_into(driver, "eval-limit", "3")
        browser.type_into(driver, "eval-tokens", "8")
        browser.click(driver, "evaluate")
        report = browser.wait(lambda: "Evaluation report" in (t := browser.text_of(driver, "eval-report")) and t, 120,
                              "the evaluation report")
        assert "tiny-llama" in report and "ui-run" in report and "Task train" in report
        assert driver.find_elements(By.CSS_SELECTOR, "#eval-charts img")
        saved = json.loads((project / ".seektune-ui" / "evals" / "eval" / "report.json").read_text())
        assert saved["models"] == ["tiny-llama", "ui-run"] and saved["tasks"]["train"]["models"]["ui-run"]["clean"]

        browser.open_tab(driver, "Chat", "chat-run")
        browser.type_into(driver, "chat-run", "ui-run")
        browser.type_into(driver, "chat-base", "tiny-llama")
        browser.type_into(driver, "chat-prompt", QA[0][0])
        browser.click(driver, "ask")
        answers = browser.wait(lambda: all(values := [browser.value_of(driver, e)
                                                      for e in ("chat-answer", "chat-base-answer")]) and values,
                               60, "both answers")

    finally:
        driver.quit()
    from seektune.inference.session import ChatSession

    expected = [ChatSession.open([str(path)], max_new_tokens=64).ask(QA[0][0])
                for path in (project / "runs" / "ui-run", project / "tiny-llama")]
    assert answers == expected   # the page answers what `seektune chat` answers, for the run and its base
