"""Driving `seektune ui` in headless Chromium (Debian's chromium + chromium-driver, selenium): shared by the
browser test and the measured new-user run (bench/ui_clinic.py)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def browser(width: int = 1280, height: int = 2400):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.binary_location = CHROMIUM
    return webdriver.Chrome(service=Service(DRIVER), options=options)


def wait(condition, timeout: float, what: str):
    end = time.time() + timeout
    while time.time() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def field(driver, elem_id: str, timeout: float = 15):
    """The text box or input of a component (waited for: an unfolded section renders its fields a moment later)."""
    from selenium.webdriver.common.by import By

    selector = f"#{elem_id} textarea, #{elem_id} input"
    return wait(lambda: next(iter(driver.find_elements(By.CSS_SELECTOR, selector)), None), timeout, f"#{elem_id}")


def type_into(driver, elem_id: str, text: str) -> None:
    from selenium.webdriver.common.keys import Keys

    box = field(driver, elem_id)
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.DELETE)
    box.send_keys(text)
    driver.execute_script("arguments[0].blur();", box)   # gradio reads a field when it loses focus (a TAB could
    # open the next field's dropdown over the button clicked next)


def text_of(driver, elem_id: str) -> str:
    from selenium.webdriver.common.by import By

    return " ".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, f"#{elem_id}"))


def value_of(driver, elem_id: str) -> str:
    return field(driver, elem_id).get_attribute("value")


def click(driver, elem_id: str) -> None:
    from selenium.webdriver.common.by import By

    element = driver.find_element(By.CSS_SELECTOR, f"#{elem_id}")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
    element.click()


def open_tab(driver, name: str, first_field: str) -> None:
    """Show a tab (selenium reads only what is displayed)."""
    from selenium.webdriver.common.by import By

    tab = f"//button[@role='tab' and contains(., '{name}')]"
    wait(lambda: driver.find_elements(By.XPATH, tab), 30, name)
    driver.find_element(By.XPATH, tab).click()
    wait(lambda: any(e.is_displayed() for e in driver.find_elements(By.CSS_SELECTOR, f"#{first_field}")), 30,
         f"the {name} tab")


def open_section(driver, elem_id: str) -> None:
    """Unfold an accordion of the train form."""
    from selenium.webdriver.common.by import By

    button = driver.find_element(By.CSS_SELECTOR, f"#{elem_id} button")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", button)
    button.click()


def start_ui(root: Path, log: Path, port: int | None = None) -> tuple[subprocess.Popen, str]:
    """`seektune ui --root ROOT` on a free loopback port, once the page answers."""
    import httpx

    port = port or free_port()
    handle = open(log, "w")
    process = subprocess.Popen([sys.executable, "-m", "seektune.cli", "ui", "--root", str(root), "--port",
                                str(port)], stdout=handle, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"

    def reachable() -> bool:
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait(lambda: process.poll() is None and reachable(), 90, "the page")
    except AssertionError:
        process.kill()
        raise AssertionError(f"seektune ui did not start; its log:\n{log.read_text()[-3000:]}") from None
    return process, url
