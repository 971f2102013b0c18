"""The demo page in headless Chromium (Debian chromium + chromedriver, driven by Selenium) against the app served
on 127.0.0.1: picking a bundled example and asking its question shows the pipeline's answer."""

import os
import shutil
import socket

import pytest

from speechbert import SpeechBertForQuestionAnswering

from .conftest import need, seeded

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")




@pytest.fixture
def demo(tmp_path, tester, processor):
    need(shutil.which("flite") is not None, "flite is not installed")
    pytest.importorskip("gradio")
    import app

    model = seeded(SpeechBertForQuestionAnswering, tester.config())
    model.save_pretrained(tmp_path / "ckpt")
    processor.save_pretrained(tmp_path / "ckpt")
    return app.Demo(str(tmp_path / "ckpt"))


def test_answer_function_and_its_errors(demo):
    import gradio as gr

    path, question = demo.example("Ctenophora")
    answer, span, transcript, (rate, clip) = demo.answer(path, question)
    assert answer and " s - " in span and rate == 16000 and len(clip) > 0
    assert [text for text, label in transcript if label == "answer"] == [answer]
    assert "".join(text for text, _ in transcript).split() == demo.known[path][0]
    with pytest.raises(gr.Error, match="Upload or record audio"):
        demo.answer(None, question)
    with pytest.raises(gr.Error, match="Type a question"):
        demo.answer(path, "  ")
    with pytest.raises(gr.Error, match="could not decode audio"):
        demo.answer(__file__, question)


def test_a_segmenter_checkpoint_answers_uploads_without_recognition(tmp_path, tester, processor, monkeypatch):
    need(shutil.which("flite") is not None, "flite is not installed")
    pytest.importorskip("gradio")
    import soundfile as sf
    import torch

    import app
    from speechbert import pipeline_speechbert
    from sqa_data.speech import synthesize

    model = seeded(SpeechBertForQuestionAnswering, tester.config(word_segmenter=True, segmenter_hidden_size=8))
    model.save_pretrained(tmp_path / "ckpt")
    processor.save_pretrained(tmp_path / "ckpt")
    demo = app.Demo(str(tmp_path / "ckpt"))
    monkeypatch.setattr(pipeline_speechbert, "recognize_words", lambda audio: pytest.fail("recognition ran"))
    sf.write(tmp_path / "upload.wav", synthesize("The Normans gave their name to Normandy."), 16000)
    with torch.no_grad():  # a segmenter that starts a word every min_word_frames (3) frames
        demo.qa.model.bert.word_segmenter.output.weight.zero_()
        demo.qa.model.bert.word_segmenter.output.bias.copy_(torch.tensor([-10.0, 0.0, 0.0]))
    answer, span, transcript, (rate, clip) = demo.answer(str(tmp_path / "upload.wav"), "Who?")
    assert answer.endswith(" (read from the audio, no ASR)") and " s - " in span and rate == 16000 and len(clip) > 0
    assert answer.split(" (read")[0].split()  # one word piece per answer word, read back from the codes
    assert "no speech recognition ran" in transcript[0][0] and "read back from their audio codes" in transcript[0][0]


def test_silent_audio_is_named(demo, tmp_path):
    import gradio as gr
    import numpy as np
    import soundfile as sf

    sf.write(tmp_path / "silence.wav", np.zeros(16000, np.float32), 16000)
    with pytest.raises(gr.Error, match="audio is silent"):
        demo.answer(str(tmp_path / "silence.wav"), "Who?")


def test_missing_model_or_pipeline_entry_is_explained(tmp_path, tester, processor):
    pytest.importorskip("gradio")
    import json

    import app

    with pytest.raises(FileNotFoundError, match="holds no checkpoint"):
        app.Demo(str(tmp_path))
    # A mistyped folder is named, not sent to the Hub (which answered offline with a connection error).
    with pytest.raises(ValueError, match=f"model {tmp_path / 'typo'}: no such folder"):
        app.Demo(str(tmp_path / "typo"))
    seeded(SpeechBertForQuestionAnswering, tester.config()).save_pretrained(tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    del config["custom_pipelines"]
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="no 'spoken-question-answering' entry"):
        app.Demo(str(tmp_path / "ckpt"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_browser_shows_the_answer(demo):
    need(shutil.which("chromium") and shutil.which("chromedriver"),
         "chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.common.exceptions import (
        ElementClickInterceptedException,
        NoSuchElementException,
        StaleElementReferenceException,
    )
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    import app

    expected, _, _, _ = demo.answer(*demo.example("Civil disobedience"))
    page = app.build(demo)
    port = free_port()
    page.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(shutil.which("chromedriver")), options=options)
    try:
        driver.get(f"http://127.0.0.1:{port}/")
        wait = WebDriverWait(driver, 60)

        def click(*locator):
            """Click once the element exists and nothing covers it: on a loaded machine the page was still laying
            out when the dropdown first looked clickable, and the app's container took the click."""
            def attempt(d):
                try:
                    d.find_element(*locator).click()
                    return True
                except (ElementClickInterceptedException, NoSuchElementException, StaleElementReferenceException):
                    return False
            wait.until(attempt)

        click(By.CSS_SELECTOR, "#example input")
        click(By.XPATH, "//li[contains(@class,'item') and contains(., 'Civil disobedience')]")
        question = driver.find_element(By.CSS_SELECTOR, "#question textarea")
        wait.until(lambda d: question.get_attribute("value"))
        click(By.CSS_SELECTOR, "#ask")
        answer = driver.find_element(By.CSS_SELECTOR, "#answer textarea")
        wait.until(lambda d: answer.get_attribute("value"))
        assert answer.get_attribute("value") == expected
        assert "s -" in driver.find_element(By.CSS_SELECTOR, "#span textarea").get_attribute("value")
        driver.save_screenshot(str(app.ROOT / "outputs" / "app_test_screenshot.png"))
    finally:
        driver.quit()
        page.close()


@pytest.mark.slow
def test_examples_are_served_from_an_outputs_folder_outside_the_working_directory(demo, tmp_path, monkeypatch):
    """`outputs/` as a symlink to another disk: Gradio must serve the example WAV, not refuse it (InvalidPathError)."""
    import tempfile

    gradio_client = pytest.importorskip("gradio_client")
    import app

    work, elsewhere, temp = tmp_path / "work", tmp_path / "elsewhere", tmp_path / "temp"
    for folder in (work, elsewhere, temp):
        folder.mkdir()
    (work / "outputs").symlink_to(elsewhere, target_is_directory=True)
    monkeypatch.chdir(work)
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # neither the working nor the temp folder holds the WAV
    monkeypatch.setattr(app, "EXAMPLE_DIR", work / "outputs" / "cache" / "app_examples")
    page = app.build(demo)
    port = free_port()
    page.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = gradio_client.Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=False)
        audio, question = client.predict("Civil disobedience", api_name="/example")
        assert question == demo.example("Civil disobedience")[1]
        assert audio["path"] == str(app.EXAMPLE_DIR / "Civil_disobedience-0.wav")
        answer, span, _, _ = client.predict(audio, question, api_name="/answer")
        # The path came back unchanged, so the answer used the corpus' words and times, as a direct call does.
        assert answer == demo.answer(*demo.example("Civil disobedience"))[0] and " s - " in span
    finally:
        page.close()


def test_the_page_serves_the_shipped_model_first(tmp_path, tester, processor, monkeypatch):
    pytest.importorskip("gradio")
    import app

    shipped, trained = tmp_path / "checkpoints" / "speechbert-segmenter", tmp_path / "outputs" / "demo"
    monkeypatch.setattr(app, "DEFAULT_MODELS", (shipped, trained))
    monkeypatch.delenv("SPEECHBERT_MODEL", raising=False)
    with pytest.raises(FileNotFoundError, match=r"no model: .*speechbert-segmenter is not shipped here and `make demo`"):
        app.Demo()
    model = seeded(SpeechBertForQuestionAnswering, tester.config())
    for folder in (trained, shipped):
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
        assert app.default_model() == folder  # the demo's model, then the shipped one once it is there
    assert app.Demo().qa.model.name_or_path == str(shipped)
