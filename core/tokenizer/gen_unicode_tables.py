#!/usr/bin/env python3
"""Generates unicode_tables.inc from the Unicode Character Database files of the Debian
package `unicode-data` (Unicode 15.0, the version of Python 3.12's unicodedata):

    apt-get download unicode-data && dpkg -x unicode-data_*.deb /tmp/ucd
    python3 gen_unicode_tables.py /tmp/ucd/usr/share/unicode > unicode_tables.inc

Each table follows the component whose behaviour it reproduces:
  * normalization data (decompositions, combining classes, compositions) is limited to the
    characters of Unicode 9.0, the tables of unicode-normalization-alignments 0.1.12 that
    Hugging Face tokenizers 0.23 normalizes with;
  * the character ages let the punctuation test use Unicode 8.0 (unicode_categories 0.1.1);
  * categories, case mappings, White_Space, Alphabetic and Python's string predicates are
    Unicode 15.0 (Rust's char methods and CPython 3.12).
Hangul syllables are handled algorithmically in unicode.cpp.
"""
import sys
import unicodedata
from pathlib import Path

MAX = 0x110000
CATS = ["Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No", "Pc", "Pd", "Ps", "Pe", "Pi",
        "Pf", "Po", "Sm", "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co", "Cn"]
HANGUL = range(0xAC00, 0xD7A4)
NORMALIZATION_AGE = (9, 0)


def parse_ranges(path, want=None):
    """Yields (lo, hi, value) from a UCD property file."""
    for line in Path(path).read_text(encoding="utf-8").split("\n"):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        fields = [f.strip() for f in line.split(";")]
        if want is not None and fields[1] != want:
            continue
        lo, _, hi = fields[0].partition("..")
        yield int(lo, 16), int(hi or lo, 16), fields[1]


class Ucd:
    def __init__(self, root):
        root = Path(root)
        self.cat = ["Cn"] * MAX
        self.ccc = [0] * MAX
        self.bidi = [""] * MAX
        self.decomp = {}
        self.lower, self.upper, self.title = {}, {}, {}
        self.digit, self.numeric = set(), set()
        first = None
        for line in (root / "UnicodeData.txt").read_text(encoding="utf-8").split("\n"):
            if not line:
                continue
            f = line.split(";")
            cp = int(f[0], 16)
            if f[1].endswith(", First>"):
                first = cp
                continue
            lo = first if f[1].endswith(", Last>") else cp
            first = None
            for c in range(lo, cp + 1):
                self.cat[c] = f[2]
                self.ccc[c] = int(f[3])
                self.bidi[c] = f[4]
            if f[5]:
                self.decomp[cp] = f[5]
            if f[7]:
                self.digit.add(cp)
            if f[8]:
                self.numeric.add(cp)
            if f[12]:
                self.upper[cp] = [int(f[12], 16)]
            if f[13]:
                self.lower[cp] = [int(f[13], 16)]
            self.title[cp] = [int(f[14], 16)] if f[14] else self.upper.get(cp, [cp])
        for lo, hi, v in parse_ranges(root / "extracted" / "DerivedNumericType.txt"):
            for c in range(lo, hi + 1):
                self.numeric.add(c)
        for line in (root / "SpecialCasing.txt").read_text(encoding="utf-8").split("\n"):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            f = [x.strip() for x in line.split(";")]
            if len(f) > 4 and f[4]:
                continue  # conditional or language-specific
            cp = int(f[0], 16)
            self.lower[cp] = [int(x, 16) for x in f[1].split()]
            self.title[cp] = [int(x, 16) for x in f[2].split()]
            self.upper[cp] = [int(x, 16) for x in f[3].split()]
        self.age = [None] * MAX
        for lo, hi, v in parse_ranges(root / "DerivedAge.txt"):
            major, minor = v.split(".")
            for c in range(lo, hi + 1):
                self.age[c] = (int(major), int(minor))
        self.white_space = {c for lo, hi, _ in parse_ranges(root / "PropList.txt", "White_Space") for c in range(lo, hi + 1)}
        self.alphabetic = {c for lo, hi, _ in parse_ranges(root / "DerivedCoreProperties.txt", "Alphabetic")
                           for c in range(lo, hi + 1)}
        self.excluded = {c for lo, hi, _ in parse_ranges(root / "DerivedNormalizationProps.txt", "Full_Composition_Exclusion")
                         for c in range(lo, hi + 1)}

    def in_normalization(self, c):
        return self.age[c] is not None and self.age[c] <= NORMALIZATION_AGE

    def full_decomposition(self, c, compat):
        d = self.decomp.get(c) if self.in_normalization(c) else None
        if not d or (d.startswith("<") and not compat):
            return [c]
        parts = [int(x, 16) for x in d.split() if not x.startswith("<")]
        out = []
        for p in parts:
            out.extend(self.full_decomposition(p, compat))
        return out


def ranges(pred):
    out, start = [], None
    for cp in range(MAX):
        if pred(cp):
            if start is None:
                start = cp
        elif start is not None:
            out.append((start, cp - 1))
            start = None
    if start is not None:
        out.append((start, MAX - 1))
    return out


def valued_ranges(value):
    out, start, cur = [], 0, value(0)
    for cp in range(1, MAX):
        v = value(cp)
        if v != cur:
            out.append((start, cp - 1, cur))
            start, cur = cp, v
    out.append((start, MAX - 1, cur))
    return out


def emit_ranges(name, rs):
    print("static constexpr CodeRange %s[] = {" % name)
    for i in range(0, len(rs), 6):
        print("  " + ", ".join("{0x%X, 0x%X}" % r for r in rs[i:i + 6]) + ",")
    print("};")


def emit_valued(name, rs):
    print("static constexpr CategoryRange %s[] = {" % name)
    for i in range(0, len(rs), 5):
        print("  " + ", ".join("{0x%X, 0x%X, %d}" % r for r in rs[i:i + 5]) + ",")
    print("};")


def emit_mapping(name, pairs):
    """pairs: list of (cp, [cps]); emitted as a sorted index plus one pool of code points."""
    pool, index = [], []
    for cp, seq in pairs:
        index.append("{0x%X, %d, %d}" % (cp, len(pool), len(seq)))
        pool.extend(seq)
    print("static constexpr MappingEntry %s[] = {" % name)
    for i in range(0, len(index), 6):
        print("  " + ", ".join(index[i:i + 6]) + ",")
    print("};")
    print("static constexpr char32_t %s_pool[] = {" % name)
    for i in range(0, len(pool), 12):
        print("  " + ", ".join("0x%X" % c for c in pool[i:i + 12]) + ",")
    if not pool:
        print("  0,")
    print("};")


def main():
    ucd = Ucd(sys.argv[1] if len(sys.argv) > 1 else "/usr/share/unicode")
    print("// Generated by gen_unicode_tables.py from the Unicode 15.0 character database"
          " (normalization limited to Unicode 9.0). Do not edit.")
    print("// NOLINTBEGIN")
    emit_valued("kCategories", valued_ranges(lambda c: CATS.index(ucd.cat[c])))
    emit_valued("kAges", valued_ranges(lambda c: 0 if ucd.age[c] is None else ucd.age[c][0] * 16 + ucd.age[c][1]))
    emit_valued("kCombiningClasses", [r for r in valued_ranges(
        lambda c: ucd.ccc[c] if ucd.in_normalization(c) else 0) if r[2]])

    def case_pairs(table):
        return [(c, table[c]) for c in sorted(table) if table[c] != [c]]

    emit_mapping("kLower", case_pairs(ucd.lower))
    emit_mapping("kUpper", case_pairs(ucd.upper))
    emit_mapping("kTitle", case_pairs(ucd.title))

    def decomp_pairs(compat):
        out = []
        for c in sorted(ucd.decomp):
            if c in HANGUL:
                continue
            d = ucd.full_decomposition(c, compat)
            if d != [c]:
                out.append((c, d))
        return out

    canon, compat = decomp_pairs(False), decomp_pairs(True)
    emit_mapping("kCanonicalDecomposition", canon)
    emit_mapping("kCompatDecomposition", compat)
    comps, seconds = [], set()
    for c in sorted(ucd.decomp):
        d = ucd.decomp[c]
        if c in HANGUL or d.startswith("<") or not ucd.in_normalization(c) or c in ucd.excluded:
            continue
        parts = [int(x, 16) for x in d.split()]
        if len(parts) == 2:
            comps.append((parts[0], parts[1], c))
            seconds.add(parts[1])
    comps.sort()
    print("static constexpr CompositionEntry kCompositions[] = {")
    for i in range(0, len(comps), 4):
        print("  " + ", ".join("{0x%X, 0x%X, 0x%X}" % x for x in comps[i:i + 4]) + ",")
    print("};")

    canon_set, compat_set = {c for c, _ in canon}, {c for c, _ in compat}
    jamo_vt = set(range(0x1161, 0x1176)) | set(range(0x11A8, 0x11C3))

    def unsafe(composing, table):
        def pred(c):
            if not ucd.in_normalization(c):
                return False
            if ucd.ccc[c] != 0 or c in jamo_vt or (composing and c in seconds):
                return True
            if not composing and c in HANGUL:
                return True
            if c not in table:
                return False
            if not composing:
                return True
            # A composing form leaves a character alone when it composes back to itself;
            # Python's unicodedata agrees with Unicode 9.0 on Unicode 9.0 characters.
            return unicodedata.normalize("NFC" if table is canon_set else "NFKC", chr(c)) != chr(c)
        return pred

    emit_ranges("kNFCUnsafe", ranges(unsafe(True, canon_set)))
    emit_ranges("kNFDUnsafe", ranges(unsafe(False, canon_set)))
    emit_ranges("kNFKCUnsafe", ranges(unsafe(True, compat_set)))
    emit_ranges("kNFKDUnsafe", ranges(unsafe(False, compat_set)))
    emit_ranges("kWhiteSpace", ranges(lambda c: c in ucd.white_space))
    emit_ranges("kAlphabetic", ranges(lambda c: c in ucd.alphabetic))
    emit_ranges("kPythonSpace", ranges(lambda c: ucd.bidi[c] in ("WS", "B", "S") or ucd.cat[c] == "Zs"))
    emit_ranges("kPythonDigit", ranges(lambda c: c in ucd.digit))
    emit_ranges("kPythonNumeric", ranges(lambda c: c in ucd.numeric))
    emit_ranges("kPythonPrintable", ranges(
        lambda c: c == 0x20 or ucd.cat[c] not in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs")))
    print("// NOLINTEND")


if __name__ == "__main__":
    main()
