#!/usr/bin/env python3
"""Held-out evaluation matrix on simulated recogniser output.

Never the dev queries: the records come from `erd simulate` (each keeps its
voice and perturbation), split by a hash of the spoken phrase exactly as
deploy/sim-eval.sh splits them, so a phrase and all its records fall on one
side.

  split   writes the training side (optionally without some voices, for
          leave-one-voice-out) and the held-out side.  --train-extra
          records (older data) only ever train, and --phrases copies a phrase
          list for erd train --synthetic; both lose every record or phrase
          that says a held-out phrase, so nothing held out is trained on.
  prepare writes that catalog (held-out phrases plus generated distractors)
          and all held-out records as one queries file, for erd rank-fit,
          erd calibrate and erd eval.
  eval    builds a catalog of the held-out phrases plus generated
          distractors, once per encoder, and prints n-best acc@1 / recall@5
          through `erd eval` for every condition: voice, engine, noise
          level and kind, room, telephone line.

usage:
  deploy/sim-matrix.py split --records A.jsonl[.gz],B... --train OUT --test OUT
                             [--holdout 0.2] [--exclude-voice flite:slt,...]
                             [--train-extra C.jsonl[.gz],...] [--phrases IN[.gz]:OUT]
  deploy/sim-matrix.py prepare --test HELDOUT.jsonl --work DIR [--erd build/erd]
  deploy/sim-matrix.py eval --test HELDOUT.jsonl --work DIR --model LABEL=SPEC ...
                            [--erd build/erd] [--distractors 10000] [--min-queries 30]
A SPEC is an `erd build --encoder` value (model:FILE, baseline).  ERD_*
variables (ERD_RERANK, ERD_CALIBRATION, ...) reach every erd command.
"""
import argparse
import gzip
import hashlib
import json
import os
import re
import subprocess
import sys


def key(s):
    return re.sub(r'[^a-z0-9]+', ' ', s.lower()).strip()


def held(spoken, share):
    return int(hashlib.md5(key(spoken).encode()).hexdigest()[:8], 16) / 2**32 < share


def records(paths):
    for p in paths.split(','):
        data = (gzip.open(p) if p.endswith('.gz') else open(p, 'rb')).read()
        # complete lines only: a file may still be growing under a simulation
        for line in data[:data.rfind(b'\n') + 1].decode().splitlines():
            if line.strip():
                yield json.loads(line)


def cmd_split(a):
    excluded = set(v for v in (a.exclude_voice or '').split(',') if v)
    test = [r for r in records(a.records) if held(r['spoken'], a.holdout)]
    test_keys = {key(r['spoken']) for r in test}
    n_tr = n_ex = n_seen = 0
    with open(a.train, 'w') as tr, open(a.test, 'w') as te:
        te.writelines(json.dumps(r) + '\n' for r in test)
        # extra records first, then the training side of --records, each in file order
        for r in (list(records(a.train_extra)) if a.train_extra else []) + \
                [r for r in records(a.records) if not held(r['spoken'], a.holdout)]:
            if key(r['spoken']) in test_keys:
                n_seen += 1
            elif r.get('voice') in excluded:
                n_ex += 1
            else:
                tr.write(json.dumps(r) + '\n')
                n_tr += 1
    print(f'sim-matrix: {n_tr} training records ({n_ex} of excluded voices left out, '
          f'{n_seen} saying a held-out phrase left out), {len(test)} held-out records',
          file=sys.stderr)
    if a.phrases:
        src, dst = a.phrases.split(':', 1)
        data = (gzip.open(src) if src.endswith('.gz') else open(src, 'rb')).read().decode()
        kept = [p for p in data.splitlines() if p.strip() and key(p) not in test_keys]
        with open(dst, 'w') as f:
            f.writelines(p + '\n' for p in kept)
        print(f'sim-matrix: {len(kept)} phrases of {src} kept in {dst}', file=sys.stderr)


def snr_bucket(p):
    if not p.get('noise'):
        return 'clean'
    snr = p.get('snr_db', 99)
    return 'snr >= 20 dB' if snr >= 20 else 'snr 10-20 dB' if snr >= 10 else 'snr < 10 dB'


def conditions(r):
    p = r.get('perturb', {})
    voice = r.get('voice', '?')
    out = ['all', 'voice ' + voice, 'engine ' + voice.split(':')[0], 'noise ' + snr_bucket(p)]
    if p.get('noise'):
        out.append('noise kind ' + p.get('noise_type', '?'))
    out.append('room' if p.get('reverb') else 'no room')
    out.append('telephone' if p.get('channel') else 'no telephone')
    if not p.get('noise') and not p.get('reverb') and not p.get('channel'):
        out.append('clean, no room, no line')
    return out


def write_sets(a):
    os.makedirs(a.work, exist_ok=True)
    ids, sets = {}, {}
    for r in records(a.test):
        k = key(r['spoken'])
        if not k or not r.get('nbest'):
            continue
        if k not in ids:
            ids[k] = (f'sim:{len(ids):05d}', r['spoken'])
        q = {'qid': r.get('id', ''), 'domain': 'sim', 'entity_id': ids[k][0],
             'spoken': r['spoken'], 'nbest': r['nbest']}
        for c in conditions(r):
            sets.setdefault(c, []).append(q)
    distractors = subprocess.run([a.erd, 'phrases', '--seed', '99', '--count',
                                  str(a.distractors)], check=True, capture_output=True,
                                 text=True).stdout.splitlines()
    seen, n_d = set(ids), 0
    with open(os.path.join(a.work, 'catalog.jsonl'), 'w') as c:
        for i, name in ids.values():
            c.write(json.dumps({'id': i, 'name': name}) + '\n')
        for name in distractors:
            if name.strip() and key(name) not in seen:
                seen.add(key(name))
                c.write(json.dumps({'id': f'distractor:{n_d:05d}', 'name': name}) + '\n')
                n_d += 1
    files = {}
    for n, (c, qs) in enumerate(sorted(sets.items())):
        if len(qs) < a.min_queries:
            continue
        path = os.path.join(a.work, f'q{n:03d}.jsonl')
        with open(path, 'w') as f:
            f.writelines(json.dumps(q) + '\n' for q in qs)
        files[c] = (path, len(qs))
    print(f'sim-matrix: catalog of {len(ids)} held-out phrases + {n_d} distractors; '
          f'{len(sets["all"]) if "all" in sets else 0} queries', file=sys.stderr)
    return files


def evaluate(a, db, path):
    out = subprocess.run([a.erd, 'eval', '--db', db, '--queries', path, '--json'],
                         check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        row = json.loads(line)
        if row.get('mode') == 'n-best' and row.get('domain') == 'sim':
            return row['acc1'], row['recall5']
    return float('nan'), float('nan')


def cmd_eval(a):
    files = write_sets(a)
    cat = os.path.join(a.work, 'catalog.jsonl')
    results = {}
    for m in a.model:
        label, spec = m.split('=', 1)
        db = os.path.join(a.work, f'{label}.db')
        for suffix in ('', '-wal', '-shm'):
            if os.path.exists(db + suffix):
                os.remove(db + suffix)
        subprocess.run([a.erd, 'import', '-q', '--db', db, '--catalog', 'sim', cat], check=True)
        subprocess.run([a.erd, 'build', '-q', '--db', db, '--catalog', 'sim', '--encoder', spec],
                       check=True)
        results[label] = {c: evaluate(a, db, p) for c, (p, _) in files.items()}
    labels = [m.split('=', 1)[0] for m in a.model]
    print('| condition | queries | ' + ' | '.join(f'{l} acc@1 | {l} R@5' for l in labels) + ' |')
    print('|---|---:|' + '---:|---:|' * len(labels))
    for c, (_, n) in files.items():
        cells = ' | '.join(f'{results[l][c][0]:.3f} | {results[l][c][1]:.3f}' for l in labels)
        print(f'| {c} | {n} | {cells} |')


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest='cmd', required=True)
    s = sub.add_parser('split')
    s.add_argument('--records', required=True)
    s.add_argument('--train', required=True)
    s.add_argument('--test', required=True)
    s.add_argument('--holdout', type=float, default=0.2)
    s.add_argument('--exclude-voice')
    s.add_argument('--train-extra')
    s.add_argument('--phrases')
    e = sub.add_parser('eval')
    e.add_argument('--test', required=True)
    e.add_argument('--work', required=True)
    e.add_argument('--model', action='append', required=True)
    e.add_argument('--erd', default='build/erd')
    e.add_argument('--distractors', type=int, default=10000)
    e.add_argument('--min-queries', type=int, default=30)
    p = sub.add_parser('prepare')
    p.add_argument('--test', required=True)
    p.add_argument('--work', required=True)
    p.add_argument('--erd', default='build/erd')
    p.add_argument('--distractors', type=int, default=10000)
    a = ap.parse_args()
    if a.cmd == 'prepare':
        a.min_queries = 1
        files = write_sets(a)
        os.replace(files['all'][0], os.path.join(a.work, 'queries.jsonl'))
        for path, _ in files.values():
            if os.path.exists(path):
                os.remove(path)
        return
    (cmd_split if a.cmd == 'split' else cmd_eval)(a)


if __name__ == '__main__':
    main()
