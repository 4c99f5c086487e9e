#!/usr/bin/env python3
"""Writes erd(1) from the binary itself: the command list of `erd --help`,
each command's `erd CMD --help` (its option table) and every setting of the
configuration table with its default and documentation (`erd config
--dump` under an empty environment).  Nothing is written by hand, so the
page cannot drift from the program.

usage: gen-man.py ERD_EXE OUT
"""
import re
import subprocess
import sys


def run(exe, *args):
    # defaults only: no config file, no ERD_* variables
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    p = subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=60)
    return p.stdout + p.stderr


def esc(line):
    line = line.replace("\\", "\\e")
    return ("\\&" + line) if line.startswith((".", "'")) else line


def verbatim(text):
    return [".nf"] + [esc(l) for l in text.rstrip("\n").split("\n")] + [".fi"]


def main():
    exe, out = sys.argv[1], sys.argv[2]
    top = run(exe, "--help")
    commands = re.findall(r"^  ([a-z][a-z-]+)\s{2,}(.*)$", top, re.M)
    version = "erd"
    m = re.search(r"erd ([0-9][0-9.]*)", run(exe, "--version"))
    if m:
        version += " " + m.group(1)
    page = [
        '.TH ERD 1 "" "%s" "User Commands"' % version,
        ".SH NAME",
        "erd \\- entity resolution by sound for voice assistants",
        ".SH SYNOPSIS",
        ".B erd",
        ".I COMMAND",
        "[\\fIOPTIONS\\fR]",
        ".SH DESCRIPTION",
        "erd resolves what a speech recogniser heard to the catalog entity that was meant,",
        "matching names by how they sound.  It imports catalogs into SQLite, builds a FAISS",
        "index of phonetic vectors and answers n-best hypotheses over HTTP",
        "(\\fBerd serve\\fR, which also serves an operator console at /).",
        ".SH COMMANDS",
    ]
    for name, summary in commands:
        page += [".SS erd %s" % name, esc(summary) + ".", ".PP"]
        page += verbatim(run(exe, name, "--help"))
    page += [
        ".SH CONFIGURATION",
        "Settings come from built-in defaults, then the file named by \\fB\\-\\-config\\fR or",
        "\\fBERD_CONFIG\\fR, then \\fBERD_\\fR\\fIKEY\\fR environment variables.  Each setting,",
        "its default and its meaning:",
    ]
    for block in run(exe, "config", "--dump").strip().split("\n\n"):
        lines = block.split("\n")
        if len(lines) < 2 or not lines[0].startswith("# "):
            continue
        key = lines[-1].split(" ", 1)[0]
        page += [".TP", "\\fB%s\\fR" % key, esc(" ".join(l[2:] for l in lines[:-1]))]
    page += [
        ".SH FILES",
        ".TP",
        "/etc/erd/erd.conf",
        "configuration (as installed by the package)",
        ".TP",
        "/usr/share/erd/phonetics/models",
        "the learned encoder, noise channel and calibration files",
        ".TP",
        "/usr/share/erd/demo/books.jsonl",
        "the goodbooks-10k demo catalog",
        ".SH EXIT STATUS",
        "0 success, 1 failure, 2 bad usage, 65 bad input data, 66 missing input file,",
        "78 bad configuration.",
    ]
    with open(out, "w") as f:
        f.write("\n".join(page) + "\n")


if __name__ == "__main__":
    main()
