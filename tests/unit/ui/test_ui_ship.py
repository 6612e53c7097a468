"""The Compress & serve tab's logic without a browser: a UI run exported through the real seektune
commands (the GGUF file holds the adapter merged into its base), a server started detached on a
free loopback port answers the page's own curl and openai snippets, a fresh `Servers` reads its state back from
disk, and nothing outside the project folder is compressed or served."""

import contextlib
import io
import json
import os
import shutil
import socket
import subprocess

import httpx
import pytest
import torch

from seektune.errors import ConfigError, SeektuneError
from seektune.ui import serving
from seektune.ui.project import Project
from tests.conftest import make_tiny_llama


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_tokenizer):
    """A project folder with a tiny base and a LoRA run `clinic` on it, known to the UI by its job record."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("ship")
    base = make_tiny_llama(root / "models" / "base", tiny_tokenizer)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                           LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], lora_dropout=0.0))
    torch.manual_seed(1)
    with torch.no_grad():   # B starts at zero: give the adapter weights that change the logits
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.5)
    run_dir = root / "runs" / "clinic"
    model.save_pretrained(run_dir / "final")
    tiny_tokenizer.save_pretrained(run_dir / "final")
    jobs = root / ".seektune-ui" / "jobs"
    jobs.mkdir(parents=True)
    (jobs / "clinic.json").write_text(json.dumps({"name": "clinic", "run_dir": str(run_dir), "config": "c.yaml",
                                                  "pid": 0, "command": [], "log": "x.log", "started": 1.0}))
    v_proj = model.base_model.model.model.layers[1].self_attn.v_proj
    with torch.no_grad():
        weights = v_proj.base_layer.weight.clone(), v_proj.base_layer.weight + v_proj.get_delta_weight("default")
    return Project(root), *weights


def test_a_run_exported_through_the_cli_is_its_merged_model(project):
    import gguf

    project, base_v, merged_v = project
    summary, exported = serving.compress(project, "clinic", "export-gguf", "q8_0")   # the adapter merged first
    assert exported == project.state("compressed", "clinic-q8_0.gguf")
    assert "`seektune export runs/clinic --format gguf --type q8_0 --out .seektune-ui/compressed/clinic-q8_0.gguf`" \
        in summary
    reader = gguf.GGUFReader(exported)
    arch = reader.fields["general.architecture"]
    assert bytes(arch.parts[arch.data[0]]).decode() == "llama"
    types = {t.name: t.tensor_type for t in reader.tensors}
    assert types["blk.1.attn_v.weight"] == gguf.GGMLQuantizationType.Q8_0
    tensor = next(t for t in reader.tensors if t.name == "blk.1.attn_v.weight")
    stored = torch.from_numpy(gguf.quants.dequantize(tensor.data, tensor.tensor_type)).reshape(merged_v.shape)
    error = (stored - merged_v).abs().max()
    assert error < 0.02 * merged_v.abs().max() and error < (stored - base_v).abs().max() / 5   # merged, not the base
    assert exported.with_suffix(".Modelfile").is_file()


def test_a_detached_server_answers_the_snippets_and_is_read_back_from_disk(project):
    project, _, _ = project
    port = _free_port()
    status = serving.Servers(project.root).start(project, ["clinic"], port)
    try:
        assert (status.state, status.url, status.served) == ("running", f"http://127.0.0.1:{port}/v1", ["clinic"])
        assert [m["id"] for m in httpx.get(f"{status.url}/models").json()["data"]] == ["clinic"]

        snippet = serving.client_snippet(status.url, "clinic", status.keys_required, system="Answer briefly.")
        assert "'role': 'system', 'content': 'Answer briefly.'" in snippet.python and '"system"' in snippet.curl
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(snippet.python, {})   # the page's Python snippet, as a user would paste it
        assert printed.getvalue().endswith("\n") and printed.getvalue() != "None\n"   # the answer's text
        if shutil.which("curl"):
            answer = json.loads(subprocess.run(snippet.curl, shell=True, capture_output=True, text=True,
                                               check=True, timeout=60).stdout)
            assert answer["model"] == "clinic" and answer["object"] == "chat.completion"
            assert isinstance(answer["choices"][0]["message"]["content"], str)
            assert answer["choices"][0]["finish_reason"] in ("stop", "length")

        fresh = serving.Servers(project.root)   # as after a page reload or a UI restart
        [read] = fresh.statuses()
        assert (read.port, read.state, read.url, read.models) == (port, "running", status.url, ["clinic"])
        record = json.loads((fresh.folder / f"{port}.json").read_text())
        assert os.getsid(record["pid"]) == record["pid"]   # its own session: it outlives the UI
        with pytest.raises(ConfigError, match="already runs on port"):
            fresh.start(project, ["clinic"], port)
    finally:
        stopped = serving.Servers(project.root).stop(port)
    assert stopped and serving.Servers(project.root).statuses()[0].state == "stopped"
    assert not serving.Servers(project.root).stop(port)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{status.url}/models")


def test_a_server_that_cannot_start_says_why(project):
    project, _, _ = project
    (project.root / "not-a-model").mkdir(exist_ok=True)
    port = _free_port()
    with pytest.raises(SeektuneError, match="exited with 2 before it listened(.|\n)*not a model or adapter directory"):
        serving.Servers(project.root).start(project, ["not-a-model"], port)
    assert serving.Servers(project.root).status(port).state == "failed"


def test_nothing_outside_the_project_is_compressed_or_served(project, tmp_path):
    project, _, _ = project
    (tmp_path / "elsewhere").mkdir()
    outside = str(tmp_path / "elsewhere")
    for name in (outside, "../elsewhere", "runs/../../elsewhere"):   # typed, or climbing out
        with pytest.raises(ConfigError, match="outside"):
            serving.compress(project, name, "quantize", "int8")
        with pytest.raises(ConfigError, match="outside"):
            serving.Servers(project.root).start(project, [name], _free_port())
    with pytest.raises(ConfigError, match="outside"):
        serving.Servers.args(project, ["clinic"], 8000, api_key_file="/etc/passwd")
    with pytest.raises(ConfigError, match="gptq"):
        serving.compress_args(project, "clinic", "quantize", "gptq")   # needs calibration: the CLI, not the page
    refused = {outside, "../elsewhere", "runs/../../elsewhere"}
    assert not any(refused & set(s.models) for s in serving.Servers(project.root).statuses())


def test_the_commands_the_page_shows(project):
    project, _, _ = project
    args, out = serving.compress_args(project, "runs/clinic/final", "quantize", "nf4")
    assert serving.command_line(args) == ("seektune quantize runs/clinic/final --method nf4 --out "
                                          ".seektune-ui/compressed/clinic-nf4")
    assert serving.command_line(serving.Servers.args(project, ["clinic", "models/base"], 8001)) == \
        "seektune serve runs/clinic models/base --host 127.0.0.1 --port 8001"
    keyed = serving.client_snippet("http://127.0.0.1:8001/v1", "it's", keys_required=True)
    assert '"Authorization: Bearer $SEEKTUNE_API_KEY"' in keyed.curl and "os.environ['SEEKTUNE_API_KEY']" in \
        keyed.python
    assert json.loads(subprocess.run(f"printf %s {keyed.curl.split(' -d ')[1]}", shell=True, capture_output=True,
                                     text=True).stdout)["model"] == "it's"   # the body survives shell quoting


def test_the_tab_builds_with_its_elements(project):
    gr = pytest.importorskip("gradio")
    from seektune.ui.tabs import ship_tab

    project, _, _ = project
    with gr.Blocks() as page:
        ship_tab.build(project)
    ids = {getattr(b, "elem_id", None) for b in page.blocks.values()}
    assert {"ship-model", "ship-action", "ship-type", "ship-run", "ship-result", "serve-models", "serve-port",
            "serve-start", "serve-stop", "serve-status", "serve-snippet"} <= ids
