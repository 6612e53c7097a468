"""Token ids to client text: incremental decoding equals decoding the whole answer, stop strings end the answer
before them even across token boundaries, and R1 reasoning is split from the answer."""

import pytest

from seektune.serve.text import Detokenizer, ReasoningSplit, StopStrings, TextStream


@pytest.mark.parametrize("text", ["Code Amber. Extension 4417.", "naïve café — 发热三天，体温 39°C。",
                                  "a  b\n\nc"])
def test_incremental_decoding_equals_whole_decoding(deepseek_tok, text):
    ids = deepseek_tok(text, add_special_tokens=False)["input_ids"]
    detok = Detokenizer(deepseek_tok)
    pieces = [detok.push(i) for i in ids] + [detok.flush()]
    assert "".join(pieces) == deepseek_tok.decode(ids, skip_special_tokens=True)
    assert not any("\ufffd" in p for p in pieces)   # no half characters sent


def test_incremental_decoding_of_byte_level_pieces(tiny_tokenizer):
    text = "Patients must fast for ten hours. é ü"
    ids = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    detok = Detokenizer(tiny_tokenizer)
    assert "".join(detok.push(i) for i in ids) + detok.flush() == tiny_tokenizer.decode(ids)


def _feed(stops, pieces):
    s = StopStrings(stops)
    out = [s.push(p) for p in pieces]
    return out, s.flush(), s.stopped


def test_stop_string_split_across_pieces_is_never_sent():
    out, tail, stopped = _feed(["END"], ["Code Am", "ber. E", "N", "D more"])
    assert "".join(out) + tail == "Code Amber. "
    assert out[1] == "ber. "          # the 'E' that might start END is held back, not sent
    assert stopped


def test_text_that_only_looked_like_a_stop_is_released():
    out, tail, stopped = _feed(["END"], ["an E", "nd", "ing"])
    assert out == ["an ", "End", "ing"] and tail == "" and not stopped


def test_earliest_of_several_stops_wins():
    out, _, stopped = _feed(["\n\n", "Q:"], ["A: yes Q: no\n\nmore"])
    assert out == ["A: yes "] and stopped


def _split(opened, pieces):
    split = ReasoningSplit(opened)
    parts = [split.push(p) for p in pieces] + [split.flush()]
    return "".join(r for r, _ in parts), "".join(c for _, c in parts)


def test_reasoning_opened_by_the_prompt_goes_to_reasoning_content():
    text = "\nThe code is amber.\n</think>\n\nCode Amber."
    assert _split(True, list(text)) == ("The code is amber.\n", "Code Amber.")   # char by char: markers split


def test_reasoning_tag_in_the_output():
    assert _split(False, ["<th", "ink>", "why", "</th", "ink>", "\n\nanswer"]) == ("why", "answer")


def test_no_reasoning_is_all_content():
    assert _split(False, ["<", "b>bold</b>"]) == ("", "<b>bold</b>")


def test_text_stream_with_r1_tokens(deepseek_tok):
    ids = deepseek_tok("\nhmm, amber</think>\n\nCode Amber.END junk", add_special_tokens=False)["input_ids"]
    stream = TextStream(deepseek_tok, ["END"], ReasoningSplit(opened_in_prompt=True))
    parts = [stream.push(i) for i in ids]
    parts.append(stream.finish())
    assert stream.stopped
    assert "".join(r for r, _ in parts) == "hmm, amber"
    assert "".join(c for _, c in parts) == "Code Amber."
