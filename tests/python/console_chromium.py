"""The web console in a real browser: headless Chromium (Debian's chromium and chromium-driver)
driven by selenium opens the console, checks that it renders the topic and the consumer group
the Rust test created (high watermark and lag), produces more records with confluent-kafka,
and checks that the page shows them without being reloaded.

usage: console_chromium.py BOOTSTRAP ADMIN_URL TOPIC GROUP HIGH_WATERMARK COMMITTED MORE"""

import sys
import time

from confluent_kafka import Producer
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from common import Deadline, check, fail

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PAGE_TIMEOUT_S = 30

bootstrap, admin_url, topic, group = sys.argv[1:5]
high_watermark, committed, more = (int(a) for a in sys.argv[5:8])

options = webdriver.ChromeOptions()
options.binary_location = CHROMIUM
for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
    options.add_argument(arg)
browser = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
browser.set_page_load_timeout(PAGE_TIMEOUT_S)


def cells(selector):
    """The text of every cell of each row matching the CSS selector."""
    return browser.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(r => [...r.cells].map(c => c.textContent));",
        selector)


def wait_for(what, probe):
    deadline = Deadline(PAGE_TIMEOUT_S, what)
    while True:
        found = probe()
        if found:
            return found
        deadline.check()
        time.sleep(0.1)


def topic_row(expected_hw):
    rows = cells(f'#topics tr[data-topic="{topic}"][data-partition="0"]')
    # topic, partition, shard, log start, high watermark, ...
    return rows if rows and rows[0][4] == str(expected_hw) else None


def group_row(expected_lag):
    rows = cells(f'#groups tr[data-group="{group}"]')
    # group, state, members, topic, partition, committed, high watermark, lag
    return rows if rows and rows[0][3] == topic and rows[0][7] == str(expected_lag) else None


try:
    browser.get(admin_url + "/")
    check(browser.title == "Riffle console", f"title: {browser.title!r}")
    wait_for(f"topic {topic} at high watermark {high_watermark}", lambda: topic_row(high_watermark))
    row = wait_for(f"group {group} with lag {high_watermark - committed}",
                   lambda: group_row(high_watermark - committed))
    check(row[0][5] == str(committed), f"committed offset shown: {row}")
    shards = cells("#shards tbody tr")
    check(len(shards) >= 1, f"per-shard load rows: {shards}")
    # A marker on this document: a reload would lose it.
    browser.execute_script("window.riffleSameDocument = true;")
    refreshes = int(browser.execute_script("return document.body.dataset.refreshes"))
    print(f"rendered {topic} and {group} after {refreshes} refresh(es)", flush=True)

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for i in range(more):
        producer.produce(topic, value=f"more-{i}".encode(), partition=0)
    check(producer.flush(30) == 0, "records undelivered after flush")

    total = high_watermark + more
    wait_for(f"topic {topic} at high watermark {total}", lambda: topic_row(total))
    wait_for(f"group {group} with lag {total - committed}", lambda: group_row(total - committed))
    check(browser.execute_script("return window.riffleSameDocument === true;"),
          "the page was reloaded instead of updated in place")
    print(f"updated in place to high watermark {total}", flush=True)
except Exception as e:  # noqa: BLE001 - any failure is reported as one line
    fail(f"{type(e).__name__}: {e}")
finally:
    browser.quit()
