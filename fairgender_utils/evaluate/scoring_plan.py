"""What the batched scorer runs: rows, the prediction slots read from them, and how requests map onto both.

A *slot* is one prediction context: the masked row and position (masked LM), or the prefix ``ids[:p]``
(causal LM; a trie numbers the prefixes). Requests that need the same context share the slot, and a row
that owns no slot is not run.

Causal LMs may *pack* requests that share a prefix (StereoSet's three candidates, a CrowS pair) into one
row: the shared prefix once, then each remainder as a branch that sees the prefix and itself only
(a tree-shaped attention mask, position ids continuing after the prefix). The hidden states are those
of the separate sequences; the shared prefix is computed once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Row:
    """Token ids of one row; ``branch`` 0 = shared prefix (or a plain sequence), k = the k-th remainder."""

    ids: tuple[int, ...]
    positions: tuple[int, ...]
    branch: tuple[int, ...]

    @property
    def packed(self) -> bool:
        return any(self.branch)


def common_prefix(seqs: Sequence[Sequence[int]]) -> int:
    """Length of the longest common prefix of all sequences."""
    n = min(len(s) for s in seqs)
    for i in range(n):
        if any(s[i] != seqs[0][i] for s in seqs[1:]):
            return i
    return n


def prefix_groups(requests: Sequence, min_shared: int = 2, max_group: int = 4) -> list[list[int]]:
    """Consecutive requests sharing at least ``min_shared`` leading tokens with the group's first one."""
    groups: list[list[int]] = []
    for i, req in enumerate(requests):
        if groups and len(groups[-1]) < max_group and \
                common_prefix([requests[groups[-1][0]].ids, req.ids]) >= min_shared:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


class Plan:
    """Rows to run, slots to read, and the (slot, token) key of every requested log-probability."""

    def __init__(self, requests: Sequence, family: str, mask_id: int | None, pack: bool = False):
        self.rows: list[Row] = []
        self.row_slots: list[list[int]] = []
        self.slot_read: list[int] = []  # the row position whose output predicts the slot's tokens
        self.slot_tokens: list[list[int]] = []
        self.request_keys: list[list[tuple[int, int]]] = []
        self._slot_index: dict[object, int] = {}
        self._row_index: dict[Row, int] = {}
        for req in requests:
            for p in req.positions:
                if not 0 <= p < len(req.ids) or (family == "causal" and p == 0):
                    raise ValueError(f"position {p} cannot be scored in a sequence of {len(req.ids)} tokens")
        if family == "causal":
            groups = prefix_groups(requests) if pack else [[i] for i in range(len(requests))]
            self._plan_causal(requests, groups)
        else:
            self._plan_masked(requests, mask_id)

    def _row(self, row: Row) -> int:
        if row not in self._row_index:
            self._row_index[row] = len(self.rows)
            self.rows.append(row)
            self.row_slots.append([])
        return self._row_index[row]

    def _slot(self, context: object, row: int | None, read: int, token: int) -> tuple[int, int]:
        slot = self._slot_index.get(context)
        if slot is None:
            slot = self._slot_index[context] = len(self.slot_read)
            self.slot_read.append(read)
            self.slot_tokens.append([])
            self.row_slots[row].append(slot)
        if token not in self.slot_tokens[slot]:
            self.slot_tokens[slot].append(token)
        return slot, token

    def _plan_masked(self, requests: Sequence, mask_id: int | None) -> None:
        for req in requests:
            keys = []
            for p in req.positions:
                ids = req.ids[:p] + (mask_id,) + req.ids[p + 1:]
                row = self._row(Row(ids, tuple(range(len(ids))), (0,) * len(ids)))
                keys.append(self._slot((row, p), row, p, req.ids[p]))
            self.request_keys.append(keys)

    def _plan_causal(self, requests: Sequence, groups: list[list[int]]) -> None:
        trie: dict[tuple[int, int], int] = {}  # (prefix node, next token) -> node of the longer prefix
        for group in groups:
            seqs = [requests[i].ids for i in group]
            shared = common_prefix(seqs) if len(seqs) > 1 else len(seqs[0])
            ids, pos, branch, offset = list(seqs[0][:shared]), list(range(shared)), [0] * shared, []
            for k, s in enumerate(seqs, 1):
                offset.append(len(ids) - shared)
                ids += s[shared:]
                pos += range(shared, len(s))
                branch += [k] * (len(s) - shared)
            row_spec, row = Row(tuple(ids), tuple(pos), tuple(branch)), None
            for k, i in enumerate(group):
                req, nodes = requests[i], [0]
                for tok in req.ids:
                    nodes.append(trie.setdefault((nodes[-1], tok), len(trie) + 1))
                keys = []
                for p in req.positions:
                    context = ("prefix", nodes[p])  # the trie node of ids[:p]
                    if context not in self._slot_index and row is None:
                        row = self._row(row_spec)
                    read = p - 1 if p - 1 < shared else offset[k] + p - 1
                    keys.append(self._slot(context, row, read, req.ids[p]))
                self.request_keys.append(keys)

    def batches(self, batch_tokens: int, max_stretch: float = 1.25, slack: int = 4) -> list[list[int]]:
        """Rows that own a slot, sorted by length, in batches of at most ``batch_tokens`` padded tokens whose
        longest row is at most ``max_stretch`` times (+ ``slack`` tokens) the shortest (little padding;
        ``max_stretch=1, slack=0``: rows of one length, no padding at all)."""
        length = [len(r.ids) for r in self.rows]
        order = sorted((r for r in range(len(self.rows)) if self.row_slots[r]), key=lambda r: length[r])
        out: list[list[int]] = []
        for r in order:
            n = length[r]
            if out and (len(out[-1]) + 1) * n <= batch_tokens and n <= max_stretch * length[out[-1][0]] + slack:
                out[-1].append(r)
            else:
                out.append([r])
        return out

    def inputs(self, batch: list[int], pad_id: int, dtype: torch.dtype, device) -> dict[str, torch.Tensor]:
        """Model inputs of a batch: right-padded ids and a 2D mask, or for packed rows a 4D tree mask."""
        rows = [self.rows[r] for r in batch]
        width = max(len(r.ids) for r in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        pos = torch.zeros((len(rows), width), dtype=torch.long)
        br = torch.full((len(rows), width), -1, dtype=torch.long)
        for b, r in enumerate(rows):
            ids[b, :len(r.ids)] = torch.tensor(r.ids)
            pos[b, :len(r.ids)] = torch.tensor(r.positions)
            br[b, :len(r.ids)] = torch.tensor(r.branch)
        if not any(r.packed for r in rows):
            return {"input_ids": ids.to(device), "attention_mask": (br >= 0).long().to(device)}
        q, k = br[:, :, None], br[:, None, :]
        allowed = torch.ones(width, width, dtype=torch.bool).tril() & (k >= 0) & ((k == 0) | (k == q))
        allowed |= torch.eye(width, dtype=torch.bool)  # padding attends to itself (no empty softmax rows)
        mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)
        return {"input_ids": ids.to(device), "position_ids": pos.to(device),
                "attention_mask": mask[:, None].to(device)}
