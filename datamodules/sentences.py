"""Cutting text into sentences, the unit of the sentence-level models (models/sentence_vae). Plain Python,
so a pipeline that cuts its prompt loads no data pipeline."""

from __future__ import annotations

# The reference's cut marks (ASCII; its CJK marks never occur in the stdlib corpus but are kept for other text).
SENTENCE_MARKS = ',.!?;:"' + "，。！？；：、"


def split_sentences(text: str, marks: str = SENTENCE_MARKS) -> list[str]:
    """Cut ``text`` after a mark that is followed by whitespace, and before every newline; the
    whitespace starts the next piece, so ``"".join(pieces) == text`` exactly. Unlike the reference, a
    mark inside a word ("os.path", "3.14", "e.g.x") does not cut. A piece is never whitespace only."""
    if not text:
        return []
    pieces, start = [], 0
    for p in range(1, len(text)):
        if text[p].isspace() and (text[p - 1] in marks or text[p] == "\n") and text[start:p].strip():
            pieces.append(text[start:p])
            start = p
    if text[start:].strip() or not pieces:
        pieces.append(text[start:])
    else:
        pieces[-1] += text[start:]  # trailing whitespace stays with the last sentence
    return pieces
