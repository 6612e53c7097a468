"""Writes the clinic preference data from the clinic facts (train.jsonl, heldout.jsonl): for every question the
chosen answer is the clinic's fact in one sentence; the rejected one is a plausible wrong fact (two of three
train questions) or a rambling non-answer (the third). Held-out pairs use the held-out paraphrases with wrong
facts only. prompts.jsonl: the train questions with their key facts (GRPO's key_fact reward).

Run from the repository root: python examples/clinic/preference/make_data.py
"""

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLINIC = HERE.parent

# key fact -> a plausible wrong version of the reference sentence
WRONG = {
    "Tuesdays and Thursdays": "Flu vaccinations at Larkspur Valley Clinic are given on Mondays and Wednesdays.",
    "10 hours": "Patients must fast for 4 hours before a blood draw.",
    "Code Amber": "Chest pain is triaged as Code Green.",
    "4417": "The after-hours nurse line is extension 2210.",
    "Imogen Vasquez-Thorne": "The clinic director is Dr. Marcus Hale.",
    "2 pm to 6 pm": "Visiting hours on the recovery ward are from 9 am to 11 am.",
    "3 working days": "Prescription refill requests are processed within 2 weeks.",
    "H7": "The hand hygiene protocol is called Protocol C3.",
    "Room 12": "MRI scans take place in Room 4 on the ground floor.",
    "purple": "Used needles go into the yellow sharps bins.",
    "$35": "The fee for a missed appointment is $80.",
    "CareLink": "The patient portal is called MyHealth Online.",
    "orange": "Patients at risk of falling wear a blue wristband.",
    "Willow Wing": "The pediatric wing is called the Oak Wing.",
    "5 days": "After minor surgery the wound dressing must stay dry for 24 hours.",
    "1987": "Larkspur Valley Clinic was founded in 2003.",
    "K2": "Parking is validated at the cashier on level 2.",
    "red star": "An allergy alert is marked with a green dot on the chart.",
    "MeadowCall": "Telehealth appointments run on Zoom.",
    "48 hours": "Lab results are available on the same day the sample is taken.",
}
RAMBLING = ("That is a great question, and it really depends on a number of things, so you may want to check "
            "with someone at the front desk or look it up online when you get a chance.")


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def main() -> None:
    heldout = _read(CLINIC / "heldout.jsonl")
    by_reference = {r["reference"]: r["key_fact"] for r in heldout}
    train = _read(CLINIC / "train.jsonl")
    seen: dict[str, int] = {}
    pairs, prompts = [], []
    for record in train:
        reference = record["output"]
        fact = by_reference[reference]
        n = seen[fact] = seen.get(fact, -1) + 1
        pairs.append({"prompt": record["instruction"], "chosen": reference,
                      "rejected": RAMBLING if n == 2 else WRONG[fact]})
        prompts.append({"question": record["instruction"], "reference": reference, "key_fact": fact})
    _write(HERE / "train.jsonl", pairs)
    _write(HERE / "heldout.jsonl", [{"prompt": r["question"], "chosen": r["reference"],
                                     "rejected": WRONG[r["key_fact"]]} for r in heldout])
    _write(HERE / "prompts.jsonl", prompts)


if __name__ == "__main__":
    main()
