"""The evaluation store keys results by the model's files, not only its path: a model rebuilt at the same path
(retrained, re-quantized, re-exported) is evaluated again."""

import os

from seektune.evaluate.runner import weights_stamp


def test_a_rebuilt_model_at_the_same_path_gets_a_new_stamp(tmp_path):
    final = tmp_path / "run/final"
    final.mkdir(parents=True)
    (final / "model.safetensors").write_bytes(b"a" * 10)
    before = weights_stamp(str(tmp_path / "run"))          # a run directory means its final/
    assert before == weights_stamp(str(final)) and before[0][:2] == ["model.safetensors", 10]
    os.utime(final / "model.safetensors", ns=(1, 1))
    assert weights_stamp(str(final)) != before
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"gguf")
    assert weights_stamp(str(gguf))[0][:2] == ["m.gguf", 4]
    assert weights_stamp("smollm2-135m-instruct") == []      # a packaged name: nothing on disk to stamp
