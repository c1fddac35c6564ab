"""FinOpsia categorizer features, identical to the Rust side (udfs/core).

normalize_description(text) follows udfs/core/src/text.rs exactly:
  1. lower-case the whole text (str.lower(): Unicode full mapping);
  2. each run of ASCII digits 0-9 becomes a single "0";
  3. every character that is not alphanumeric (str.isalnum) is a separator;
  4. tokens are the non-empty runs between separators, joined by one space.
Both implementations are checked on udfs/testdata/normalize_vectors.tsv.
"""

DIGITS = "0123456789"

# Feature names and kinds, as udfs/core/src/categorizer.rs knows them.
FLOAT_FEATURES = ["amount"]
CAT_FEATURES = ["direction", "account", "desc", "tok_first", "tok_first2", "tok_last"]
FEATURES = FLOAT_FEATURES + CAT_FEATURES


def normalize_description(text):
    out = []
    pending = False
    in_digits = False
    for c in (text or "").lower():
        if c in DIGITS:
            if not in_digits:
                if pending and out:
                    out.append(" ")
                pending = False
                out.append("0")
                in_digits = True
            continue
        in_digits = False
        if c.isalnum():
            if pending and out:
                out.append(" ")
            pending = False
            out.append(c)
        else:
            pending = True
    return "".join(out)


def token_features(normalized):
    """(first token, first two tokens, last token) of a normalized description."""
    if not normalized:
        return "", "", ""
    toks = normalized.split(" ")
    return toks[0], " ".join(toks[:2]), toks[-1]


def amount_major(amount_minor, exponent):
    """abs(amount_minor) / 10**exponent: int / int is correctly rounded, as in Rust."""
    return abs(int(amount_minor)) / (10 ** int(exponent))


def features_of(description, amount_minor, exponent, direction, account):
    """One row of features in FEATURES order."""
    d = normalize_description(description)
    first, first2, last = token_features(d)
    return [
        amount_major(amount_minor, exponent),
        (direction or "").lower(),
        account or "",
        d,
        first,
        first2,
        last,
    ]
