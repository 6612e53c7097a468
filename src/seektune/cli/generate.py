"""seektune generate MODEL --prompts FILE [--best-of N --reward RM] --out answers.jsonl: answer a file of
questions, greedy or by rejection sampling with a trained reward model."""

from __future__ import annotations


def run(args) -> None:
    from seektune.artifacts import open_artifact
    from seektune.atomic import JsonlWriter
    from seektune.data.examples import load_examples
    from seektune.errors import ConfigError
    from seektune.inference.best_of import answer_all
    from seektune.inference.reward_model import RewardModel
    from seektune.metrics.text import key_fact_match
    from seektune.runtime import set_threads

    if args.best_of < 1:
        raise ConfigError(f"--best-of must be at least 1 (got {args.best_of})")
    if args.best_of > 1 and not args.reward:
        raise ConfigError("--best-of N needs --reward DIR: the reward model that picks the best of the N answers")
    set_threads()
    examples = load_examples(args.prompts, args.system, args.limit)
    with_image = next((e for e in examples if e.images), None)
    if with_image is not None:
        raise ConfigError(f"{with_image.where}: the record has images; seektune generate answers text prompts. "
                          "Score image questions with seektune eval (a generation task) or ask with "
                          "seektune chat RUN --image FILE")
    model, tokenizer = open_artifact(args.model).load()
    reward = RewardModel(args.reward) if args.reward else None
    choices = answer_all(model, tokenizer, [e.messages for e in examples], args.best_of, reward,
                         args.max_new_tokens, args.temperature, args.seed)
    with JsonlWriter(args.out) as out:
        for example, choice in zip(examples, choices):
            out.write({"question": example.question, "answer": choice.answer, "reasoning": choice.reasoning,
                       "reward": choice.reward, "reference": example.reference, "key_fact": example.key_fact,
                       "candidates": choice.candidates})
    lines = [f"{len(choices)} answers ({'best of ' + str(args.best_of) if args.best_of > 1 else 'greedy'}) -> "
             f"{args.out}"]
    facts = [(e.key_fact, c.answer) for e, c in zip(examples, choices) if e.key_fact]
    if facts:
        lines.append(f"key-fact match: {sum(key_fact_match(a, k) for k, a in facts) / len(facts):.3f} "
                     f"over {len(facts)} questions")
    scored = [c.reward for c in choices if c.reward is not None]
    if scored:
        lines.append(f"mean reward of the kept answers: {sum(scored) / len(scored):.3f}")
    print("\n".join(lines))


def register(sub) -> None:
    p = sub.add_parser("generate", help="answer a file of questions, greedy or best-of-N with a reward model",
                       description="Answers for every record of a prompts file (the eval formats: question/"
                       "reference/key_fact, alpaca, ShareGPT, messages), written as JSONL.")
    p.add_argument("model", help="run directory, final/ adapter or model directory, or packaged name")
    p.add_argument("--prompts", required=True, help="JSON/JSONL file of questions")
    p.add_argument("--out", required=True, help="where the answers go (JSONL, written atomically)")
    p.add_argument("--best-of", type=int, default=1, help="sample N answers per question and keep the one the "
                   "reward model scores highest (1 = one greedy answer)")
    p.add_argument("--reward", help="reward model run (objective: reward) that scores the answers")
    p.add_argument("--temperature", type=float, default=0.8, help="sampling temperature for best-of-N")
    p.add_argument("--max-new-tokens", type=int, default=128, help="generation length limit")
    p.add_argument("--system", help="system message for records that have none")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling")
    p.add_argument("--limit", type=int, default=0, help="answer only the first N questions (0 = all)")
    p.set_defaults(func=run)
