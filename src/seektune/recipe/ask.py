"""The recipe's `ask` stage: serve a model with `seektune serve`, ask it one question through the official
`openai` client exactly as a user's application would, write the answer, stop the server."""

from __future__ import annotations

import json
from pathlib import Path

from seektune.atomic import write_text
from seektune.data.citations import citations
from seektune.errors import ConfigError, SeektuneError
from seektune.recipe.config import AskStage
from seektune.serve.process import start_server


def ask(stage: AskStage, base: Path, log: Path, env: dict[str, str]) -> dict:
    try:
        from openai import OpenAI
    except ImportError:
        raise ConfigError("the ask stage uses the official OpenAI client: pip install openai") from None
    model = str((base / stage.model).resolve()) if not Path(stage.model).is_absolute() else stage.model
    server = start_server([model], log, timeout=300, env=env)
    try:
        client = OpenAI(base_url=f"{server.url}/v1", api_key="unused", timeout=600)
        name = client.models.list().data[0].id
        messages = ([{"role": "system", "content": stage.system}] if stage.system else []) + \
            [{"role": "user", "content": stage.prompt}]
        reply = client.chat.completions.create(model=name, messages=messages, max_tokens=stage.max_tokens,
                                               temperature=0)
    finally:
        server.stop()
    answer = reply.choices[0].message.content or ""
    cited = [c.render() for c in citations(answer) if c.law]
    result = {"url": server.url, "model": name, "question": stage.prompt, "answer": answer, "citations": cited,
              "usage": reply.usage.model_dump() if reply.usage else None}
    out = base / stage.out
    write_text(out, json.dumps(result, ensure_ascii=False, indent=1))
    print(f"Q: {stage.prompt}\nA: {answer}\ncitations: {cited or 'none'}\nwritten: {out}", flush=True)
    if stage.expect_citation and not cited:
        raise SeektuneError(f"the served model's answer cites no law (expect_citation is set): {answer!r}")
    return result
