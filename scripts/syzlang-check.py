#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Check the syzkaller description of /dev/snp_host against the C header.

tools/testing/syzkaller/snp_host.txt describes the ABI of
include/uapi/linux/snp_host.h in syzlang; snp_host.txt.const next to it holds
the values of the constants it names, as syz-extract would write them.  Both
are written by hand (the .const by `--update`) and neither is compiled by the
project, so this script proves they match the header:

- every ioctl the header defines has an ioctl$NAME call with cmd const[NAME],
  whose argument is a pointer to the struct of the header's _IOC_SIZE, in the
  direction of its _IOC_DIR (_IOR: out, _IOW: in, _IOWR: inout);
- every struct of the header is described under its own name with the same
  fields in the same order, and the syzlang layout (natural alignment, as
  syzkaller lays out a struct that is not packed) gives every field the
  offset and size, and the struct the size, that the C compiler gives;
- every constant the header defines for a field (backends, flags, policies,
  levels) is in a flags list, and the .const file is exactly what the
  header's values give (`--update` rewrites it).

The values come from a small C program compiled against the header with the
host's cc, so the compiler's layout is the reference, not this script's idea
of it.  Exit status 0 when everything matches, 1 with one line per mismatch.
`--self-test` (what make check runs) then applies each of DRIFTS to copies of
the two files and fails unless the check catches every one.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADER = os.path.join(TOP, "include/uapi/linux/snp_host.h")
SYZ = os.path.join(TOP, "tools/testing/syzkaller/snp_host.txt")

# Constants the description names that are not the module's; their values
# come from the C library's headers, as syz-extract takes them from the kernel.
SYSTEM_CONSTS = {
    "AT_FDCWD": "<fcntl.h>",
    "O_RDWR": "<fcntl.h>",
    "__NR_ioctl": "<sys/syscall.h>",
    "__NR_openat": "<sys/syscall.h>",
}

INT_SIZES = {"int8": 1, "int16": 2, "int32": 4, "int64": 8, "intptr": 8,
             "bool8": 1, "bool16": 2, "bool32": 4, "bool64": 8,
             "vma": 8, "vma64": 8, "fd": 4}


class Problem(Exception):
    pass


def split_args(s):
    """Splits "a, b[c, d], e" at the top-level commas."""
    out, depth, cur = [], 0, ""
    for ch in s:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def parse_type(t):
    """"ptr[in, foo]" -> ("ptr", ["in", "foo"]); "int64" -> ("int64", [])."""
    t = t.strip()
    m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\[(.*)\])?$", t)
    if not m:
        raise Problem(f"cannot parse type {t!r}")
    return m.group(1), split_args(m.group(2)) if m.group(2) else []


def parse_syz(text):
    """The parts of syzlang this description uses."""
    d = {"structs": {}, "flags": {}, "types": {}, "calls": {}, "consts": set()}
    lines = [re.sub(r"#.*", "", line).rstrip() for line in text.splitlines()]
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line or line.startswith(("include ", "incdir ", "resource ")):
            continue
        m = re.match(r"^([a-z_][a-z0-9_]*)\s*\{$", line)
        if m:
            fields = []
            while lines[i].strip() != "}":
                f = lines[i].strip()
                i += 1
                if not f:
                    continue
                attrs = re.search(r"\(([a-z_, ]+)\)$", f)
                if attrs:
                    f = f[:attrs.start()].strip()
                name, typ = f.split(None, 1)
                fields.append((name, typ.strip()))
            i += 1
            d["structs"][m.group(1)] = fields
            continue
        m = re.match(r"^type\s+(\w+)\s+(.+)$", line)
        if m:
            d["types"][m.group(1)] = m.group(2).strip()
            continue
        m = re.match(r"^(\w+)\s*=\s*(.+)$", line)
        if m:
            names = [v.strip() for v in m.group(2).split(",")]
            d["flags"][m.group(1)] = names
            d["consts"].update(n for n in names if not re.match(r"^-?\d|^0x", n))
            continue
        m = re.match(r"^(\w+)\$(\w+)\((.*)\)\s*(\w+)?$", line)
        if m:
            args = [a.split(None, 1) for a in split_args(m.group(3))]
            d["calls"][f"{m.group(1)}${m.group(2)}"] = (m.group(1), args)
            d["consts"].add(f"__NR_{m.group(1)}")
            continue
        raise Problem(f"snp_host.txt: cannot parse {line!r}")
    # Every const[NAME] anywhere names a constant.
    for name in re.findall(r"const\[([A-Za-z_]\w*)", text):
        d["consts"].add(name)
    return d


def layout(d, typ):
    """(size, alignment) of a syzlang type, by syzkaller's rules."""
    base, args = parse_type(typ)
    if base in d["types"]:
        return layout(d, d["types"][base])
    if base in INT_SIZES:
        return INT_SIZES[base], INT_SIZES[base]
    if base in ("const", "flags", "len", "bytesize"):
        if len(args) < 2:
            raise Problem(f"{typ}: needs its integer type inside a struct")
        return layout(d, args[1])
    if base in ("ptr", "ptr64"):
        return 8, 8
    if base == "array":
        if len(args) != 2 or not re.match(r"^\d+$", args[1]):
            raise Problem(f"{typ}: only fixed-size arrays have a size")
        size, align = layout(d, args[0])
        return size * int(args[1]), align
    if base in d["structs"]:
        s = struct_layout(d, base)
        return s["size"], s["align"]
    raise Problem(f"unknown type {typ!r}")


def struct_layout(d, name):
    off, align, fields = 0, 1, []
    for fname, ftyp in d["structs"][name]:
        size, a = layout(d, ftyp)
        off = (off + a - 1) // a * a
        fields.append((fname, off, size))
        off += size
        align = max(align, a)
    return {"size": (off + align - 1) // align * align, "align": align,
            "fields": fields}


def parse_header(text):
    """Structs (with field names), ioctls and field constants of the header."""
    structs = {}
    for m in re.finditer(r"^struct (snp_host_\w+) \{(.*?)^\};", text, re.S | re.M):
        body = re.sub(r"/\*.*?\*/", "", m.group(2), flags=re.S)
        structs[m.group(1)] = re.findall(r"\b(\w+)(?:\[\d+\])?;", body)
    ioctls = {}
    for m in re.finditer(r"^#define (SNP_HOST_\w+)\s+_IO(R|W|WR)?\(\s*\w+\s*,\s*\w+"
                         r"\s*(?:,\s*struct (\w+)\s*)?\)", text, re.M):
        ioctls[m.group(1)] = m.group(3)
    consts = re.findall(r"^#define (SNP_HOST_(?:BACKEND|FLAG|DIRECTMAP|LEVEL)_\w+)\s",
                        text, re.M)
    return structs, ioctls, consts


def c_values(structs, names, include):
    """Compiles a program against the header that prints every value we need."""
    out = ["#include <stddef.h>", "#include <stdio.h>"]
    out += sorted({f"#include {h}" for h in SYSTEM_CONSTS.values()})
    out += ["#include <linux/snp_host.h>", "",
            "#define P(name, v) printf(\"%s %llu\\n\", name, (unsigned long long)(v))",
            "#define F(s, f) P(#s \".\" #f, offsetof(struct s, f)); "
            "P(#s \".\" #f \".size\", sizeof(((struct s *)0)->f))",
            "", "int main(void)", "{"]
    for s, fields in structs.items():
        out.append(f"\tP(\"{s}\", sizeof(struct {s}));")
        out += [f"\tF({s}, {f});" for f in fields]
    for n in sorted(names):
        out.append(f"\tP(\"{n}\", {n});")
    out += ["\treturn 0;", "}", ""]
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = os.path.join(tmp, "abi.c"), os.path.join(tmp, "abi")
        with open(src, "w") as f:
            f.write("\n".join(out))
        cc = os.environ.get("CC", "cc")
        r = subprocess.run([cc, "-Wall", "-I", include,
                            "-o", exe, src], capture_output=True, text=True)
        if r.returncode:
            raise Problem(f"the C program does not compile against the header:\n{r.stderr}")
        r = subprocess.run([exe], capture_output=True, text=True, check=True)
    return {k: int(v) for k, v in (line.rsplit(" ", 1) for line in r.stdout.splitlines())}


def const_file(d, values):
    lines = ["# Code generated by scripts/syzlang-check.py --update from "
             "include/uapi/linux/snp_host.h. DO NOT EDIT.",
             "arches = amd64"]
    lines += [f"{n} = {values[n]}" for n in sorted(d["consts"])]
    return "\n".join(lines) + "\n"


def check(syz_path, header_path, update, include=os.path.join(TOP, "include/uapi")):
    with open(syz_path) as f:
        syz = f.read()
    with open(header_path) as f:
        header = f.read()
    d = parse_syz(syz)
    h_structs, h_ioctls, h_consts = parse_header(header)
    unknown = sorted(n for n in d["consts"] if not n.startswith("SNP_HOST_")
                     and n not in SYSTEM_CONSTS)
    if unknown:
        raise Problem(f"constants of unknown origin: {', '.join(unknown)}")
    v = c_values(h_structs, d["consts"] | set(h_ioctls) | set(h_consts), include)
    bad = []

    for name, struct in sorted(h_ioctls.items()):
        call = d["calls"].get(f"ioctl${name}")
        if not call:
            bad.append(f"{name}: no ioctl${name} in snp_host.txt")
            continue
        args = dict((a[0], a[1]) for a in call[1])
        if args.get("cmd") != f"const[{name}]":
            bad.append(f"ioctl${name}: cmd is {args.get('cmd')}, not const[{name}]")
        base, targs = parse_type(args.get("arg", "void"))
        nr = v[name]
        want_dir = {1: "in", 2: "out", 3: "inout"}.get(nr >> 30)
        if base != "ptr" or len(targs) != 2:
            bad.append(f"ioctl${name}: arg {args.get('arg')} is not ptr[dir, struct]")
            continue
        if targs[0] != want_dir:
            bad.append(f"ioctl${name}: arg is ptr[{targs[0]}, ...], the number says {want_dir}")
        if targs[1] != struct:
            bad.append(f"ioctl${name}: arg points to {targs[1]}, the header's is {struct}")
        size = layout(d, targs[1])[0] if targs[1] in d["structs"] else None
        if size != (nr >> 16) & 0x3fff:
            bad.append(f"ioctl${name}: {targs[1]} is {size} bytes in syzlang, "
                       f"the number encodes {(nr >> 16) & 0x3fff}")
    for call in d["calls"]:
        if call.startswith("ioctl$") and call[6:] not in h_ioctls:
            bad.append(f"{call}: the header has no such ioctl")

    for s, fields in sorted(h_structs.items()):
        if s not in d["structs"]:
            bad.append(f"struct {s}: not described in snp_host.txt")
            continue
        lay = struct_layout(d, s)
        names = [f[0] for f in lay["fields"]]
        if names != fields:
            bad.append(f"struct {s}: fields {names} in syzlang, {fields} in the header")
            continue
        if lay["size"] != v[s]:
            bad.append(f"struct {s}: {lay['size']} bytes in syzlang, {v[s]} in C")
        for fname, off, size in lay["fields"]:
            if off != v[f"{s}.{fname}"] or size != v[f"{s}.{fname}.size"]:
                bad.append(f"{s}.{fname}: offset {off} size {size} in syzlang, "
                           f"offset {v[f'{s}.{fname}']} size {v[f'{s}.{fname}.size']} in C")
    for s in d["structs"]:
        if s not in h_structs:
            bad.append(f"{s}: described in snp_host.txt, not a struct of the header")

    # An alias (SNP_HOST_DIRECTMAP_UNMAP) is covered by the name it aliases.
    def group(n):
        return n.split("_")[2]

    listed = {n for names in d["flags"].values() for n in names}
    values = {(group(n), v[n]) for n in listed if n in v}
    for n in h_consts:
        if n not in listed and (group(n), v[n]) not in values:
            bad.append(f"{n}: in the header, in no flags list of snp_host.txt")

    const_path = syz_path + ".const"
    want = const_file(d, v)
    if update:
        with open(const_path, "w") as f:
            f.write(want)
    else:
        try:
            with open(const_path) as f:
                have = f.read()
        except FileNotFoundError:
            have = ""
        if have != want:
            bad.append(f"{os.path.relpath(const_path, TOP)} does not match the header "
                       "(run scripts/syzlang-check.py --update):")
            have_l, want_l = set(have.splitlines()), set(want.splitlines())
            bad += [f"  have: {line}" for line in sorted(have_l - want_l)]
            bad += [f"  want: {line}" for line in sorted(want_l - have_l)]
    return bad, len(h_ioctls), len(h_structs), len(d["consts"])


# Drifts the check must catch: (file, text, replacement, what it stands for).
DRIFTS = [
    ("header", "\t__u32 asid;\t\t/* in for MAKE_PRIVATE", "\t__u64 asid;\t\t/* in for MAKE_PRIVATE",
     "a field of the header widened"),
    ("header", "_IOWR(SNP_HOST_IOCTL_TYPE, 0x04,", "_IOWR(SNP_HOST_IOCTL_TYPE, 0x06,",
     "an ioctl renumbered"),
    ("header", "_IOR(SNP_HOST_IOCTL_TYPE, 0x07,", "_IOWR(SNP_HOST_IOCTL_TYPE, 0x07,",
     "an ioctl's direction changed"),
    ("header", "#define SNP_HOST_LEVEL_2M", "#define SNP_HOST_LEVEL_1G\t\t2\n#define SNP_HOST_LEVEL_2M",
     "a constant added to the header"),
    ("syz", "\tnpages\t\tint64[1:1024]", "\tnpages\t\tint32[1:1024]",
     "a field of the description narrowed"),
    ("syz", "\tlevel\t\tflags[snp_host_level, int8]\n\timmutable",
     "\timmutable\tconst[0, int8]\n\tlevel\t\tflags[snp_host_level, int8]\n\tx",
     "two fields of the description swapped"),
    ("syz", "ioctl$SNP_HOST_PSMASH(", "#ioctl$SNP_HOST_PSMASH(", "an ioctl left out"),
]


def self_test():
    """Applies each drift to a copy and expects the check to fail on it."""
    with open(SYZ) as f:
        syz = f.read()
    with open(HEADER) as f:
        header = f.read()
    with open(SYZ + ".const") as f:
        consts = f.read()
    missed = []
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, "linux"))
        for which, old, new, what in DRIFTS:
            text = syz if which == "syz" else header
            if old not in text:
                missed.append(f"self-test: {what}: {old!r} is not in the {which} any more")
                continue
            h = os.path.join(tmp, "linux", "snp_host.h")
            y = os.path.join(tmp, "snp_host.txt")
            with open(h, "w") as f:
                f.write(text.replace(old, new, 1) if which == "header" else header)
            with open(y, "w") as f:
                f.write(text.replace(old, new, 1) if which == "syz" else syz)
            with open(y + ".const", "w") as f:
                f.write(consts)
            try:
                bad = check(y, h, False, include=tmp)[0]
            except Problem:
                bad = ["fails"]
            if not bad:
                missed.append(f"self-test: {what}: not noticed")
    return missed


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--update", action="store_true",
                    help="rewrite snp_host.txt.const from the header")
    ap.add_argument("--self-test", action="store_true",
                    help="also check that drifts of the header or the description are caught")
    ap.add_argument("--syz", default=SYZ, help="the syzlang file")
    ap.add_argument("--header", default=HEADER, help="the C header")
    a = ap.parse_args()
    try:
        bad, nioctl, nstruct, nconst = check(a.syz, a.header, a.update)
    except Problem as e:
        print(f"syzlang-check: {e}", file=sys.stderr)
        return 1
    if a.self_test and not bad:
        bad = self_test()
    for line in bad:
        print(f"syzlang-check: {line}", file=sys.stderr)
    if bad:
        return 1
    print(f"syzlang-check: snp_host.txt matches the header: {nioctl} ioctls, "
          f"{nstruct} structs (sizes, field offsets and sizes), {nconst} constants"
          + (f"; {len(DRIFTS)} drifts caught" if a.self_test else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
