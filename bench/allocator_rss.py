"""Peak RSS of a few SmolLM2 LoRA steps with glibc's default heap vs MALLOC_MMAP_THRESHOLD_=131072, which maps
each tensor over 128 KiB on its own and unmaps it when freed (so freed activations leave the process).

`python bench/allocator_rss.py` prints per-step RSS for both settings and the peak ratio. Each setting runs in
its own child process; glibc reads the variable at start-up.
"""

from __future__ import annotations

import os
import subprocess
import sys

STEP = """
import torch
torch.set_num_threads(1)
from seektune.config import ModelConfig
from seektune.method_config import MethodConfig
from seektune.models import methods
from seektune.models.loading import load_model
from seektune.train.objectives.causal_lm import CausalLMObjective

def mb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) // 1024

model = methods.prepare(load_model(ModelConfig(name_or_path="smollm2-135m-instruct")),
                        MethodConfig.model_validate({"name": "lora"}))
objective = CausalLMObjective(model)
loaded = mb("VmRSS")
ids = torch.randint(0, 49152, (4, 256)); targets = ids.clone(); targets[:, :128] = -100
positions = torch.arange(256).repeat(4, 1)
optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
for step in range(3):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, n = objective(ids, targets, positions)
    (loss / n).backward()
    after_backward = mb("VmRSS")
    optimizer.step(); optimizer.zero_grad(set_to_none=True)
    print(f"step {step}: RSS after backward {after_backward} MB, peak {mb('VmHWM')} MB")
print(f"RESULT {loaded} {mb('VmHWM')}")
"""


def run(env_extra: dict) -> tuple[int, int]:
    done = subprocess.run([sys.executable, "-c", STEP], env={**os.environ, **env_extra}, capture_output=True,
                          text=True, check=True)
    lines = [x for x in done.stdout.splitlines() if x.startswith(("step", "RESULT"))]
    print("\n".join("  " + x for x in lines[:-1]))
    loaded, peak = map(int, lines[-1].split()[1:])
    return loaded, peak


def main() -> None:
    print("glibc default heap:")
    base_loaded, base_peak = run({})
    print("MALLOC_MMAP_THRESHOLD_=131072:")
    mmap_loaded, mmap_peak = run({"MALLOC_MMAP_THRESHOLD_": "131072"})
    print(f"peak RSS {base_peak} -> {mmap_peak} MB: ratio {mmap_peak / base_peak:.2f}; "
          f"growth after the model loaded {base_peak - base_loaded} -> {mmap_peak - mmap_loaded} MB")


if __name__ == "__main__":
    main()
