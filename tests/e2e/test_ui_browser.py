"""`seektune ui` in a real browser (headless Chromium through selenium): the page starts on a free loopback port
over a project folder, the data tab inspects the training file (record count, format, token-length histogram),
the train form is filled for the suite's tiny Llama and its template checked, training starts as its own process
and keeps going when the browser closes, a new browser sees the run finish with its loss charted, the evaluate tab
reports base and run side by side, and the chat tab answers exactly what `seektune chat` answers for the run and
for its base."""

import json
import shutil
import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import QA

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,2400"):
        options.add_argument(flag)
    options.binary_location = CHROMIUM
    return webdriver.Chrome(service=Service(DRIVER), options=options)


def _wait(condition, timeout: float, what: str):
    end = time.time() + timeout
    while time.time() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _type(driver, elem_id: str, text: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    field = driver.find_element(By.CSS_SELECTOR, f"#{elem_id} textarea, #{elem_id} input")
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.DELETE)
    field.send_keys(text)
    field.send_keys(Keys.TAB)   # gradio reads a field when it loses focus


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
    if not (CHROMIUM and DRIVER):
        pytest.skip("chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")
    port = _free_port()
    log = open(project / "ui.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "seektune.cli", "ui", "--root", str(project), "--port",
                                str(port)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        import httpx

        _wait(lambda: process.poll() is None and _reachable(httpx, url), 90, "the page")
        yield url
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def _reachable(httpx, url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _open_tab(driver, name: str) -> None:
    """Show a tab (selenium reads only what is displayed)."""
    from selenium.webdriver.common.by import By

    first_field = {"Train": "#model textarea", "Evaluate": "#eval-models textarea", "Chat": "#chat-run textarea"}[name]
    _wait(lambda: driver.find_elements(By.XPATH, f"//button[@role='tab' and contains(., '{name}')]"), 30, name)
    driver.find_element(By.XPATH, f"//button[@role='tab' and contains(., '{name}')]").click()
    _wait(lambda: any(e.is_displayed() for e in driver.find_elements(By.CSS_SELECTOR, first_field)), 30,
          f"the {name} tab")


def _cell_texts(driver) -> str:
    from selenium.webdriver.common.by import By

    return " ".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, "#runs"))   # re-rendered on refresh


def test_train_from_the_page_then_chat_with_the_result(ui, project):
    from selenium.webdriver.common.by import By

    driver = _browser()
    try:
        driver.get(ui)
        _wait(lambda: driver.find_elements(By.CSS_SELECTOR, "#inspect-file textarea"), 30, "the data tab")
        _type(driver, "inspect-file", "train.jsonl")
        driver.find_element(By.CSS_SELECTOR, "#inspect").click()
        report = _wait(lambda: "records:" in (t := driver.find_element(By.CSS_SELECTOR, "#inspect-report").text)
                       and t, 60, "the inspection report")
        assert f"records: {len(QA)}" in report and "alpaca" in report
        _wait(lambda: driver.find_elements(By.CSS_SELECTOR, "#inspect-plot img"), 30, "the token-length histogram")

        _open_tab(driver, "Train")
        for elem_id, text in [("model", "tiny-llama"), ("data", "train.jsonl"), ("steps", "6"), ("lr", "0.005"),
                              ("batch", "2"), ("max-length", "64"), ("rank", "4"), ("run-name", "ui-run")]:
            _type(driver, elem_id, text)
        command = _wait(lambda: "seektune train" in (t := driver.find_element(By.CSS_SELECTOR, "#command").text)
                        and t, 30, "the equivalent command")
        assert "ui-run.yaml" in command
        driver.find_element(By.CSS_SELECTOR, "#check-template").click()
        checked = _wait(lambda: "Template check" in (t := driver.find_element(By.CSS_SELECTOR, "#template").text)
                        and t, 60, "the template check")
        assert "Template check passed" in checked and QA[0][0] in checked   # a rendered training example
        driver.find_element(By.CSS_SELECTOR, "#start").click()
        _wait(lambda: "ui-run" in _cell_texts(driver), 30, "the run in the table")
    finally:
        driver.quit()   # closing the browser leaves the training process running

    driver = _browser()
    try:
        driver.get(ui)
        _open_tab(driver, "Train")
        _wait(lambda: "finished" in _cell_texts(driver), 180, "the run to finish")
        assert (project / "runs" / "ui-run" / "final" / "adapter_config.json").is_file()
        steps = [json.loads(line)["step"] for line in (project / "runs" / "ui-run" / "metrics.jsonl").read_text()
                 .splitlines() if "loss" in json.loads(line)]
        assert steps[-1] == 6 and "6" in _cell_texts(driver)
        _wait(lambda: driver.find_elements(By.CSS_SELECTOR, "#loss-plot canvas, #loss-plot svg"), 30, "the loss chart")

        _open_tab(driver, "Evaluate")
        _type(driver, "eval-models", "tiny-llama\nui-run")
        _type(driver, "eval-data", "train.jsonl")
        _type(driver, "eval-limit", "3")
        _type(driver, "eval-tokens", "8")
        driver.find_element(By.CSS_SELECTOR, "#evaluate").click()
        report = _wait(lambda: "Evaluation report" in (t := driver.find_element(By.CSS_SELECTOR, "#eval-report").text)
                       and t, 120, "the evaluation report")
        assert "tiny-llama" in report and "ui-run" in report and "Task train" in report
        assert driver.find_elements(By.CSS_SELECTOR, "#eval-charts img")
        saved = json.loads((project / ".seektune-ui" / "evals" / "eval" / "report.json").read_text())
        assert saved["models"] == ["tiny-llama", "ui-run"] and saved["tasks"]["train"]["models"]["ui-run"]["clean"]

        _open_tab(driver, "Chat")
        _type(driver, "chat-run", "ui-run")
        _type(driver, "chat-base", "tiny-llama")
        _type(driver, "chat-prompt", QA[0][0])
        driver.find_element(By.CSS_SELECTOR, "#ask").click()
        answers = _wait(lambda: all(values := [driver.find_element(By.CSS_SELECTOR, f"#{e} textarea")
                                               .get_attribute("value") for e in ("chat-answer", "chat-base-answer")])
                        and values, 60, "both answers")
    finally:
        driver.quit()
    from seektune.inference.session import ChatSession

    expected = [ChatSession.open([str(path)], max_new_tokens=64).ask(QA[0][0])
                for path in (project / "runs" / "ui-run", project / "tiny-llama")]
    assert answers == expected   # the page answers what `seektune chat` answers, for the run and its base
