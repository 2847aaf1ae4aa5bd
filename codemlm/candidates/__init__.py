"""Candidate generation from the code around a hole (the model's own generations live in infill.py).

One small function per source, each adding :class:`Proposal` evidence to one shared set:

* :func:`~codemlm.candidates.names.names` / :func:`~codemlm.candidates.names.member_names`:
  identifiers of the file and the repository; names seen after the same receiver;
* :func:`~codemlm.candidates.analogs.analogs`: spans that fill the same syntax role elsewhere,
  and (:mod:`~codemlm.candidates.variants`) other calls' argument lists with one argument changed;
* :func:`~codemlm.candidates.continuations.continuations`: what followed the same last tokens;
* :func:`~codemlm.candidates.compose.composed`: argument lists, tests and statements built from
  the file's atoms where no occurrence exists.

Nothing here raises on broken code or an unknown language: a source that cannot read the
input adds nothing.
"""

from __future__ import annotations

from codemlm.candidates.analogs import analogs, hole_roles, hole_shape
from codemlm.candidates.compose import composed
from codemlm.candidates.context import HoleContext, Proposal, ProposalSet
from codemlm.candidates.continuations import continuations
from codemlm.candidates.lexical import is_name
from codemlm.candidates.names import dotted_names, member_names, names, names_as_arguments
from codemlm.candidates.repository import Repository, sibling_texts
from codemlm.candidates.statements import statements

__all__ = ["HoleContext", "Proposal", "Repository", "gather", "hole_shape", "sibling_texts"]

CONTEXT_SOURCES = ("name", "member", "analog", "role", "continuation", "wrap", "line", "compose")


def gather(context: HoleContext, repository: Repository | None = None) -> list[Proposal]:
    """Every context proposal for the hole, evidence merged per (trimmed) text."""
    found = ProposalSet(context)
    member_names(context, found, repository)
    analogs(context, found, repository)
    continuations(context, found, repository)
    names(context, found, repository.names if repository is not None else None)
    if context.after_dot:
        # After "obj." only a name can follow.
        return [p for p in found.proposals() if is_name(p.text)]
    roles = hole_roles(context)
    for role, _key in roles:
        if role in ("args", "params", "bases"):
            names_as_arguments(context, found, role)
    dotted_names(context, found)
    statements(context, found)
    composed(context, found, roles)
    return found.proposals()
