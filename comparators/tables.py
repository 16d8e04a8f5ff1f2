"""The DuckDB tables of one reconciliation, shared by the passes that fill and read them.

LEFT and RIGHT hold the sides as loaded; KEYS the aggregate plan's candidate keys; BITS and
MATCHED the integer-key plan's key bitmaps; LROWS and RROWS each side's candidate rows (selected
with `comparators.candidates.row_exprs`); COUNTS the rows per candidate key on each side; DIFF
the differing rows with their per-column statuses (`comparators.comparison`).
"""

LEFT, RIGHT, DIFF = "__left", "__right", "__diff"
KEYS, LROWS, RROWS, COUNTS = "__keys", "__lrows", "__rrows", "__counts"
BITS, MATCHED = "__bits", "__matched"
