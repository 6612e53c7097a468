"""Image-text retrieval (task type `retrieval`): how well images and their captions find each other.

Every example holds one image and its reference (an image-caption pair, or a question about the image and its
answer); the candidates are the task's distinct references. One score per (image, candidate) gives both directions:
- image -> text: the image's own reference ranks among all candidates (recall@k: in the top k);
- text -> image: each distinct reference ranks all images; a hit is any image it belongs to in the top k (with
  repeated captions, e.g. ten digit classes, several images are right for one caption).

The score comes from the joint space a clip run saved beside the model (alignment.safetensors: cosine of the two
embeddings), or, for any vision-language model, from the model itself: the mean log-probability of the candidate
as the answer to the example's prompt, rendered exactly as in training (how a captioning-trained model "matches"
an image and a report). The likelihood needs one forward per (image, candidate): images x candidates rows.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from seektune.data.batching import unpacked
from seektune.data.examples import Example
from seektune.data.render import IGNORE, Renderer
from seektune.errors import DataError
from seektune.train.objectives import CausalLMObjective
from seektune.train.objectives.causal_lm import answer_logits
from seektune.train.objectives.contrastive import load_alignment

KS = (1, 5)


def candidates(examples: list[Example]) -> tuple[list[str], list[int]]:
    """(distinct references in first-seen order, each example's index among them)."""
    texts: dict[str, int] = {}
    truth = [texts.setdefault(e.reference.strip(), len(texts)) for e in examples]
    return list(texts), truth


def check_examples(task_name: str, examples: list[Example]) -> None:
    bad = next((e for e in examples if len(e.images) != 1), None)
    if bad is not None:
        raise DataError(f"{bad.where}: task {task_name} is a retrieval task: every example holds one image and its "
                        f"caption ({{\"image\": ..., \"text\": ...}}); this one has {len(bad.images)} images")


def recall_at_k(similarity: torch.Tensor, truth: list[int], ks: tuple[int, ...] = KS) -> dict[str, float]:
    """Recall@k both ways from a [images x candidates] score matrix (higher = more alike)."""
    target = torch.tensor(truth)
    order_i2t = similarity.argsort(dim=1, descending=True)
    rank_i2t = (order_i2t == target[:, None]).float().argmax(dim=1)
    order_t2i = similarity.T.argsort(dim=1, descending=True)        # [candidates x images]
    relevant = target[order_t2i] == torch.arange(similarity.shape[1])[:, None]
    first_hit = relevant.float().argmax(dim=1)                      # rank of the best-ranked right image
    out = {}
    for k in ks:
        out[f"image_to_text_recall@{k}"] = float((rank_i2t < k).float().mean())
        out[f"text_to_image_recall@{k}"] = float((first_hit < k).float().mean())
    out["image_to_text_mean_rank"] = float(rank_i2t.float().mean() + 1)
    return out


@torch.no_grad()
def alignment_similarity(aligned, images, tokenizer, examples: list[Example], texts: list[str],
                         batch_size: int = 64) -> torch.Tensor:
    """Cosine similarity in the joint space of a clip run."""
    image_emb = torch.cat([aligned.embed_images(images.pixel_values([e.images[0] for e in examples[i:i + batch_size]])
                                                ["pixel_values"]) for i in range(0, len(examples), batch_size)])
    encoded = tokenizer(texts, add_special_tokens=False, padding=True, return_tensors="pt")
    text_emb = aligned.embed_texts(encoded["input_ids"], encoded["attention_mask"])
    return image_emb @ text_emb.T


@torch.no_grad()
def likelihood_similarity(model, tokenizer, images, examples: list[Example], texts: list[str],
                          batch_size: int = 16) -> torch.Tensor:
    """Mean log-probability of each candidate as the answer to each example's prompt (with its image)."""
    renderer = Renderer(tokenizer, max_length=1 << 30, images=images)
    objective = CausalLMObjective(model, selective_head=False).eval()
    objective.images = images
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    pairs = [(i, j) for i in range(len(examples)) for j in range(len(texts))]
    scores = torch.empty(len(examples), len(texts))
    for start in tqdm(range(0, len(pairs), batch_size), desc="retrieval (likelihood)", unit=" batch", leave=False):
        chunk = pairs[start:start + batch_size]
        samples = [renderer.conversation([*examples[i].messages, {"role": "assistant", "content": texts[j]}],
                                         examples[i].where, examples[i].images)[-1] for i, j in chunk]
        batch = objective.collate(unpacked(samples), pad, packed=False)
        targets = batch.pop("targets")
        supervised = targets != IGNORE
        image_inputs = {k: v.to(model.device) for k, v in batch.items()
                        if k not in ("input_ids", "position_ids", "attention_mask")}
        logits = answer_logits(model, batch["input_ids"].to(model.device), batch["position_ids"].to(model.device),
                               batch["attention_mask"].to(model.device), supervised.to(model.device), False,
                               image_inputs)
        token_lp = -F.cross_entropy(logits.float(), targets[supervised].to(model.device), reduction="none").cpu()
        row = supervised.nonzero()[:, 0]
        mean = torch.zeros(len(chunk)).index_add_(0, row, token_lp) / supervised.sum(1).clamp(min=1)
        for (i, j), value in zip(chunk, mean.tolist()):
            scores[i, j] = value
    return scores


def retrieval(model, tokenizer, images, model_dir: Path | None, examples: list[Example], by: str) -> dict:
    """Recall@1/5 both ways, the number of images and candidates, and which score was used."""
    texts, truth = candidates(examples)
    aligned = load_alignment(model, model_dir) if by != "likelihood" and model_dir is not None else None
    if by == "alignment" and aligned is None:
        raise DataError(f"retrieval_by: alignment, but {model_dir} has no alignment.safetensors (written by a run "
                        "with objective clip); use retrieval_by: likelihood for other models")
    if aligned is not None and aligned.text_projection is None:
        raise DataError(f"{model_dir}: this joint space was trained on image views (pair_with: views) and has no "
                        "text side; evaluate the run of the text-alignment stage")
    if aligned is not None:
        similarity, used = alignment_similarity(aligned, images, tokenizer, examples, texts), "alignment"
    else:
        similarity, used = likelihood_similarity(model, tokenizer, images, examples, texts), "likelihood"
    return {**recall_at_k(similarity, truth), "images": len(examples), "candidates": len(texts), "by": used}
