import pytest

from seektune import config
from seektune.errors import ConfigError


def _write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_unknown_key_names_it_and_the_closest_valid_key(tmp_path):
    p = _write(tmp_path, "data:\n  train: a.jsonl\ntrain:\n  learnig_rate: 0.1\n")
    with pytest.raises(ConfigError) as err:
        config.load(p)
    assert "train.learnig_rate: unknown key; did you mean 'learning_rate'?" in str(err.value)


def test_unknown_nested_key_in_lora_section(tmp_path):
    p = _write(tmp_path, "data: {train: a.jsonl}\nmethod:\n  lora:\n    rank: 8\n")
    with pytest.raises(ConfigError, match=r"method\.lora\.rank: unknown key; did you mean 'r'"):
        config.load(p)


def test_wrong_type_names_key_and_value(tmp_path):
    p = _write(tmp_path, "data: {train: a.jsonl}\ntrain:\n  micro_batch_size: lots\n")
    with pytest.raises(ConfigError, match=r"train\.micro_batch_size: .*'lots'"):
        config.load(p)


def test_bad_choice_is_rejected(tmp_path):
    p = _write(tmp_path, "data: {train: a.jsonl}\nmethod: {name: magic}\n")
    with pytest.raises(ConfigError, match=r"method\.name"):
        config.load(p)


def test_overrides_are_typed_and_applied(tmp_path):
    p = _write(tmp_path, "data: {train: a.jsonl}\n")
    cfg = config.load(p, ["train.learning_rate=1e-4", "method.lora.target_modules=[q_proj,v_proj]",
                          "data.packing=false", "output.name=x"])
    assert cfg.train.learning_rate == 1e-4
    assert cfg.method.lora.target_modules == ["q_proj", "v_proj"]
    assert cfg.data.packing is False
    assert cfg.run_dir.name == "x"


def test_override_of_unknown_key_fails(tmp_path):
    p = _write(tmp_path, "data: {train: a.jsonl}\n")
    with pytest.raises(ConfigError, match=r"train\.epoch: unknown key; did you mean 'epochs'"):
        config.load(p, ["train.epoch=3"])


def test_training_data_is_required(tmp_path):
    with pytest.raises(ConfigError, match="data.train"):
        config.load(_write(tmp_path, "train: {epochs: 1}\n"))


def test_early_stopping_needs_eval_data(tmp_path):
    p = _write(tmp_path, "data: {train: a.jsonl}\ntrain: {early_stopping_patience: 2}\n")
    with pytest.raises(ConfigError, match="early_stopping_patience"):
        config.load(p)


def test_data_paths_resolve_next_to_the_yaml_and_saved_config_round_trips(tmp_path):
    (tmp_path / "a.jsonl").write_text("{}\n")
    cfg = config.load(_write(tmp_path, "data: {train: a.jsonl}\ntrain: {seed: 5}\n"))
    assert cfg.data.train[0].path == str(tmp_path / "a.jsonl")
    out = tmp_path / "saved.yaml"
    config.save(cfg, out)
    again = config.load(out)
    assert again.model_dump() == cfg.model_dump()
    assert "learning_rate: 0.0002" in out.read_text()  # defaults are written out, resolved


def test_every_key_has_help():
    lines = config.describe()
    assert any(line.strip().startswith("train.learning_rate") for line in lines)
    helps = lines[1::1]
    assert all(h.split("\n", 1)[1].strip() for h in helps if "\n" in h)


@pytest.mark.parametrize("text,key", [
    ("method: {name: prompt}\n", "data.packing must be false for method prompt"),
    ("method: {name: adalora, adalora: {init_r: 4, target_r: 8}}\n", "target_r=8 must not exceed init_r=4"),
    ("method: {name: lora, lora: {use_dora: true, init: pissa}}\n", "pissa/olora"),
    ("method: {name: qlora, qlora: {bits: 3}}\n", "method.qlora.bits"),
    ("method: {name: lora, lora: {rank: 8}}\n", "did you mean 'r'"),
    ("method: {name: loha}\n", "method.name"),
    ("train: {layer_lr_decay: 1.5}\n", "train.layer_lr_decay"),
])
def test_method_settings_are_validated_with_the_key_named(tmp_path, text, key):
    with pytest.raises(ConfigError, match=key.replace("(", r"\(")):
        config.load(_write(tmp_path, "data: {train: a.jsonl}\n" + text))


def test_term_file_resolves_next_to_the_yaml(tmp_path):
    (tmp_path / "terms.txt").write_text("fasting\n")
    cfg = config.load(_write(tmp_path, "data: {train: a.jsonl}\ntrain: {term_file: terms.txt}\n"))
    assert cfg.train.term_file == str(tmp_path / "terms.txt")


@pytest.mark.parametrize("text, message", [
    ("continual: {previous: [r], ewc: {wieght: 3}}", r"continual\.ewc\.wieght: unknown key; did you mean 'weight'"),
    ("continual: {previous: [r], replay: {ratio: 1.5}}", r"continual\.replay\.ratio"),
    ("continual: {ewc: {weight: 3}}", r"continual\.ewc keeps earlier tasks: name them in continual\.previous"),
    ("continual: {freeze_schedule: {b: 'first half'}}", r"freeze_schedule\.b: 'first half' is not a layer list"),
    ("continual: {previous: [r], replay: {}}\nobjective: {name: dpo}", r"continual: .* not objective dpo"),
    ("continual: {previous: [r], ewc: {}}\nmethod: {name: ia3}", r"continual\.ewc .* method ia3"),
    ("continual: {previous: [r], l2sp: {}}\nmethod: {name: lora, lora: {use_dora: true}}", r"use_dora=false"),
])
def test_continual_settings_are_validated_with_the_key_named(tmp_path, text, message):
    p = _write(tmp_path, "data: {train: a.jsonl}\n" + text + "\n")
    with pytest.raises(ConfigError, match=message):
        config.load(p)


def test_continual_defaults_and_layer_lists(tmp_path):
    from seektune.schema import parse_layers

    cfg = config.load(_write(tmp_path, "data: {train: a.jsonl}\noutput: {name: travel}\n"
                             "continual: {previous: [runs/a], ewc: {}, replay: {prioritized: true}}\n"))
    assert cfg.task == "travel" and cfg.continual.ewc.weight == 1000 and cfg.continual.replay_runs == ["runs/a"]
    assert parse_layers("0-3, 7") == [0, 1, 2, 3, 7]


def test_overrides_may_follow_flags_and_anything_else_is_refused(capsys):
    from seektune.cli import _parse

    args = _parse(["train", "c.yaml", "train.seed=1", "--resume", "train.max_steps=10"])
    assert args.resume and args.overrides == ["train.seed=1", "train.max_steps=10"]
    with pytest.raises(SystemExit):
        _parse(["train", "c.yaml", "--resume", "--bogus"])
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _parse(["models", "train.seed=1"])   # a verb without overrides
