"""Question sets as typed samples, and the corpus each one is asked over.

- ``seeds``: the development questions over the five seed documents (``eval/datasets/``);
- ``injection``: prompt-injection questions over the seeds plus hostile documents
  (``eval/datasets/injection_docs/``: instructions inside documents, "ignore previous
  instructions", requests for the system prompt, fake citation markers); each question's
  ``must_not_include`` strings are what a successful injection would put in the answer;
- ``gov``: the same schema over the national government work reports (``../shared/data``),
  both dev files (gov-dev-01 … 50); a ``followup`` sample is a short conversation (``turns``),
  right when every turn is;
- ``cmrc2018`` (simplified) and ``drcd`` (traditional): reading-comprehension sets whose passages
  become the corpus (one document per passage, doc_id = passage id) — see their READMEs;
- ``crud``: the CRUD-RAG news questions (``../shared/eval/crud``) over its 3,177-article dev
  subset of ``../shared/data/crud_news`` (read from the corpus in place by the subset's ids);
  retrieval is right when a linked document is among the hits, an answer when it holds every
  key fact (the 3 questions without key facts are not scored on answers);
- ``rgb``: RGB-zh (``../shared/eval/rgb``), its three parts — ``noise``, ``integration``
  (every answer part), ``rejection`` (the right answer is a refusal) — over one index of all
  three ``docs/`` folders; an answer element that is a list is a set of alternative forms;
- ``conversations`` (``eval/datasets/conversations.jsonl``): conversations replayed turn by turn,
  each over the corpus it names (``seeds`` or ``gov``); ``conversations-seeds`` and
  ``conversations-gov`` are the conversations of one corpus (one running service holds one).
"""

from __future__ import annotations

import gzip
import json
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

ROOT = Path(__file__).resolve().parents[1]
DATASETS_DIR = Path(__file__).resolve().parent / "datasets"
SHARED = ROOT.parent / "shared"
SHARED_DATA = SHARED / "data"


class Evidence(BaseModel):
    doc: str
    quote: str


class ConversationTurn(BaseModel):
    question: str
    must_include: list[str] = Field(default_factory=list)
    refuse: bool = False  # the right answer is a refusal


class Sample(BaseModel):
    id: str
    type: str = "factoid"
    question: str
    answer: str = ""
    must_include: list[str] = Field(default_factory=list)
    must_not_include: list[str] = Field(default_factory=list)
    evidence: list[Evidence] = Field(default_factory=list)
    # reading-comprehension sets: gold answer strings and the passage they come from
    answers: list[str] = Field(default_factory=list)
    passage_id: str | None = None
    # a follow-up sample: its turns, asked in order with the earlier ones as history (the
    # sample's question is the first turn's)
    turns: list[ConversationTurn] = Field(default_factory=list)
    # news and RGB sets: every part must be in the answer, any one form of a part suffices
    answer_parts: list[list[str]] = Field(default_factory=list)
    # documents (file stems) that hold the answer, by part: retrieval is right when each part
    # has one of its documents among the hits
    gold_docs: list[list[str]] = Field(default_factory=list)
    refuse: bool = False  # the right answer is a refusal (RGB's rejection part)

    @model_validator(mode="before")
    @classmethod
    def _first_turn(cls, data: Any) -> Any:
        if isinstance(data, dict) and "question" not in data and data.get("turns"):
            return {**data, "question": data["turns"][0]["question"]}
        return data

    @property
    def unanswerable(self) -> bool:
        return self.refuse or self.type == "unanswerable"


CorpusKind = Literal["files", "passages"]


class Dataset(BaseModel):
    name: str
    # how retrieval is scored: gold quotes (evidence), gold answers (reading), gold documents
    kind: Literal["evidence", "reading", "documents"]
    samples: list[Sample]
    corpus: Path  # a folder of files, or a corpus.jsonl[.gz] of passages
    corpus_kind: CorpusKind
    extra_corpus: list[Path] = Field(default_factory=list)  # more folders of files
    corpus_ids: Path | None = None  # passages: only these ids (one per line)

    def select(self, limit: int | None, sample: bool, seed: int = 0) -> list[Sample]:
        items = list(self.samples)
        if sample:
            random.Random(seed).shuffle(items)
        return items[:limit] if limit else items

    def corpus_files(self) -> Iterator[tuple[str, bytes]]:
        """``(source, content)`` pairs for ingest of a passages corpus (``corpus_ids``: only
        those, and every one of them must be there)."""
        wanted = (
            set(self.corpus_ids.read_text(encoding="utf-8").split()) if self.corpus_ids else None
        )
        found = 0
        opener = gzip.open if self.corpus.suffix == ".gz" else open
        with opener(self.corpus, "rt", encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                if wanted is not None and row["id"] not in wanted:
                    continue
                found += 1
                text = f"{row.get('title', '')}\n{row['text']}".strip()
                yield f"{row['id']}.txt", text.encode("utf-8")
        if wanted is not None and found < len(wanted):
            raise FileNotFoundError(
                f"{len(wanted) - found} of {self.corpus_ids}'s ids not in {self.corpus}"
            )


class Conversation(BaseModel):
    id: str
    corpus: Literal["seeds", "gov"] = "gov"
    lang: str = "zh"
    turns: list[ConversationTurn] = Field(min_length=1)


CONVERSATION_SETS = ("conversations", "conversations-seeds", "conversations-gov")


def load_conversations(name: str) -> list[Conversation]:
    """The development conversations: all of them, or those of one corpus."""
    if name not in CONVERSATION_SETS:
        raise ValueError(f"unknown conversation set '{name}' ({', '.join(CONVERSATION_SETS)})")
    with (DATASETS_DIR / "conversations.jsonl").open(encoding="utf-8") as f:
        items = [Conversation.model_validate_json(line) for line in f if line.strip()]
    corpus = name.removeprefix("conversations").removeprefix("-")
    return [c for c in items if not corpus or c.corpus == corpus]


def _read_samples(path: Path) -> list[Sample]:
    with path.open(encoding="utf-8") as f:
        return [Sample.model_validate_json(line) for line in f if line.strip()]


def _shared(name: str) -> Path:
    """A data set's folder under ``../shared/data``; missing, it is an error, not an empty corpus
    (which would score every question as a miss)."""
    folder = SHARED_DATA / name
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} not found (the shared data sets live beside the repo)")
    return folder


def _shared_eval(name: str) -> Path:
    folder = SHARED / "eval" / name
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} not found (the shared dev sets live beside the repo)")
    return folder


def _jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _crud() -> Dataset:
    folder = _shared_eval("crud")
    samples = [
        Sample(
            id=row["id"],
            type=row["task"].removeprefix("questanswer_"),
            question=row["question"],
            answer=row["reference_answer"],
            answer_parts=[[fact] for fact in row["key_facts"]],
            gold_docs=[row["doc_ids"]],  # any one of them holds the answer
        )
        for row in _jsonl(folder / "questions.jsonl")
    ]
    return Dataset(
        name="crud",
        kind="documents",
        samples=samples,
        corpus=_shared("crud_news") / "docs.jsonl.gz",
        corpus_kind="passages",
        corpus_ids=folder / "subset_ids.txt",
    )


RGB_PARTS = ("noise", "integration", "rejection")
_RGB_PART = re.compile(r"_part(\d+)_")


def _rgb_sample(part: str, row: dict[str, Any]) -> Sample:
    answer = row.get("answers", row.get("answer", []))
    parts = [[a] if isinstance(a, str) else list(a) for a in answer]
    groups: dict[str, list[str]] = {}
    for doc in row.get("positive_docs", []):
        m = _RGB_PART.search(doc)
        groups.setdefault(m.group(1) if m else "", []).append(Path(doc).stem)
    refuse = row["expect"] == "refuse"
    return Sample(
        id=row["id"],
        type=part,
        question=row["question"].strip(),
        answer="" if refuse else "、".join(p[0] for p in parts),
        answer_parts=[] if refuse else parts,  # rejection: never string-checked
        gold_docs=list(groups.values()),
        refuse=refuse,
    )


def _rgb() -> Dataset:
    root = _shared_eval("rgb")
    samples = [
        _rgb_sample(part, row)
        for part in RGB_PARTS
        for row in _jsonl(root / part / "questions.jsonl")
    ]
    return Dataset(
        name="rgb",
        kind="documents",
        samples=samples,
        corpus=root / RGB_PARTS[0] / "docs",
        corpus_kind="files",
        extra_corpus=[root / p / "docs" for p in RGB_PARTS[1:]],
    )


def load_dataset(name: str) -> Dataset:
    if name == "seeds":
        return Dataset(
            name=name,
            kind="evidence",
            samples=_read_samples(DATASETS_DIR / "dev_questions.jsonl"),
            corpus=ROOT / "seeds",
            corpus_kind="files",
        )
    if name == "injection":
        return Dataset(
            name=name,
            kind="evidence",
            samples=_read_samples(DATASETS_DIR / "injection.jsonl"),
            corpus=ROOT / "seeds",
            corpus_kind="files",
            extra_corpus=[DATASETS_DIR / "injection_docs"],
        )
    if name == "gov":
        return Dataset(
            name=name,
            kind="evidence",
            samples=[
                s
                for f in ("gov_dev_questions.jsonl", "gov_dev_questions_2.jsonl")
                for s in _read_samples(DATASETS_DIR / f)
            ],
            corpus=_shared("gov_reports"),
            corpus_kind="files",
        )
    if name in ("cmrc2018", "drcd"):
        folder = _shared(name)
        samples = [
            Sample(
                id=row["id"],
                type="reading",
                question=row["question"],
                answers=row["answers"],
                must_include=[],
                passage_id=row["passage_id"],
            )
            for row in map(json.loads, (folder / "questions.jsonl").open(encoding="utf-8"))
        ]
        return Dataset(
            name=name,
            kind="reading",
            samples=samples,
            corpus=folder / "corpus.jsonl",
            corpus_kind="passages",
        )
    if name == "crud":
        return _crud()
    if name == "rgb":
        return _rgb()
    raise ValueError(f"unknown dataset '{name}' ({', '.join(DATASET_NAMES)})")


DATASET_NAMES = ("seeds", "injection", "gov", "cmrc2018", "drcd", "crud", "rgb", *CONVERSATION_SETS)
