"""Peak RSS and step time of a few SmolLM2 LoRA steps with glibc's default heap vs MALLOC_MMAP_THRESHOLD_=131072,
which maps each tensor over 128 KiB on its own and unmaps it when freed (so freed activations leave the process,
and every new one is faulted in again, zeroed page by page).

`python bench/allocator_rss.py` prints per-step RSS and seconds for both settings, the peak ratio and the time
ratio (steps after the first). Each setting runs in its own child process; glibc reads the variable at start-up.
"""

from __future__ import annotations

import os
import subprocess
import sys

STEP = """
import time
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
seconds = []
for step in range(STEPS):
    start = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, n = objective(ids, targets, positions)
    (loss / n).backward()
    after_backward = mb("VmRSS")
    optimizer.step(); optimizer.zero_grad(set_to_none=True)
    seconds.append(time.perf_counter() - start)
    print(f"step {step}: RSS after backward {after_backward} MB, peak {mb('VmHWM')} MB, {seconds[-1]:.2f} s")
print(f"RESULT {loaded} {mb('VmHWM')} {sum(seconds[1:]) / (STEPS - 1)}")
"""


STEPS = 5


def run(env_extra: dict) -> tuple[int, int, float]:
    done = subprocess.run([sys.executable, "-c", f"STEPS = {STEPS}\n" + STEP], env={**os.environ, **env_extra},
                          capture_output=True, text=True, check=True)
    lines = [x for x in done.stdout.splitlines() if x.startswith(("step", "RESULT"))]
    print("\n".join("  " + x for x in lines[:-1]))
    loaded, peak, seconds = lines[-1].split()[1:]
    return int(loaded), int(peak), float(seconds)


def main() -> None:
    print("glibc default heap:")
    base_loaded, base_peak, base_s = run({})
    print("MALLOC_MMAP_THRESHOLD_=131072:")
    mmap_loaded, mmap_peak, mmap_s = run({"MALLOC_MMAP_THRESHOLD_": "131072"})
    print(f"peak RSS {base_peak} -> {mmap_peak} MB: ratio {mmap_peak / base_peak:.2f}; "
          f"growth after the model loaded {base_peak - base_loaded} -> {mmap_peak - mmap_loaded} MB; "
          f"seconds per step {base_s:.2f} -> {mmap_s:.2f}: ratio {mmap_s / base_s:.2f}")


if __name__ == "__main__":
    main()
