#!/usr/bin/env python3
"""Manifest of a frozen simulation snapshot: what is in it and how it was
made, so a training run can say exactly what it learnt from.

usage: deploy/sim-manifest.py SNAPSHOT.jsonl.gz COMMAND-LINE > MANIFEST.json

Counts records, hypotheses and distinct phrases, and records by voice,
engine, noise kind, SNR band, room and telephone line; the FNV-1a 64 of the
uncompressed stream (the value erd train records in a model's header).
"""
import collections
import gzip
import json
import sys

FNV_OFFSET, FNV_PRIME, MASK = 0xcbf29ce484222325, 0x100000001b3, (1 << 64) - 1


def fnv1a64(data, h=FNV_OFFSET):
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & MASK
    return h


def snr_band(p):
    if not p.get('noise'):
        return 'clean'
    snr = p.get('snr_db', 99)
    return '>=20' if snr >= 20 else '10-20' if snr >= 10 else '<10'


def main():
    path, command = sys.argv[1], ' '.join(sys.argv[2:])
    raw = gzip.open(path).read()
    counts = {k: collections.Counter() for k in
              ('voice', 'engine', 'noise_type', 'snr_db', 'room', 'telephone')}
    n = hyps = 0
    phrases = set()
    for line in raw.decode().splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        p = r.get('perturb', {})
        n += 1
        hyps += len(r.get('nbest', []))
        phrases.add(r['spoken'].lower())
        voice = r.get('voice', '?')
        counts['voice'][voice] += 1
        counts['engine'][voice.split(':')[0]] += 1
        counts['noise_type'][p.get('noise_type', 'none') if p.get('noise') else 'none'] += 1
        counts['snr_db'][snr_band(p)] += 1
        counts['room'][bool(p.get('reverb'))] += 1
        counts['telephone'][bool(p.get('channel'))] += 1
    manifest = {
        'file': path.rsplit('/', 1)[-1],
        'records': n,
        'hypotheses': hyps,
        'distinct_phrases': len(phrases),
        'fnv1a64': f'{fnv1a64(raw):016x}',
        'made_by': command,
        'by': {k: {str(a): b for a, b in sorted(v.items(), key=lambda kv: str(kv[0]))}
               for k, v in counts.items()},
    }
    json.dump(manifest, sys.stdout, indent=1)
    sys.stdout.write('\n')


if __name__ == '__main__':
    main()
