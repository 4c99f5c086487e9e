#!/usr/bin/env python3
"""Open-set test data: a catalog without the entities of half of a query
set, and out-of-domain utterances as queries.

    open_set.py remove [--other-half] CATALOG QUERIES > CATALOG_WITHOUT
        drops the gold entity of every query whose gold id hashes into the
        removed half (md5 of the id, first 32 bits below 2^31), together with
        every entity sharing a normalised name (lower case, runs of anything
        but a-z0-9 as one space) or alias with a removed one: those queries
        then have no right answer in the catalog.  --other-half removes the
        other half instead (training data: every query once with its entity
        and once without).
    open_set.py rename DOMAIN < QUERIES > QUERIES_FOR_DOMAIN
        the same queries sent to catalog DOMAIN, "-DOMAIN" added to each qid.
    open_set.py ood [--catalog CATALOG] DOMAIN [DOMAIN...] < UTTERANCES > QUERIES
        (UTTERANCES: one a line, typed; or erd simulate records, spoken)
        one dev-format query per utterance and domain, "entity_id": null,
        the utterance as its only hypothesis; with --catalog, utterances that
        are the normalised name of one of its entities are left out (a
        catalog of generic phrases holds "thank you": asking for it is no
        out-of-domain request there).

    open_set.py extend CATALOG SEED > CATALOG_EXTENDED
        the same entities, about one in five renamed to a longer title of
        which its old name is a shortened form: a subtitle after a colon, a
        head before one, or a leading article.  The queries still say the
        old name, as people say "Jonestown" for "Jonestown: The Life and
        Death of Peoples Temple": without it every simulated query says
        a name whole, and a match through a shortened form would look wrong
        every time.  Deterministic for a seed; ids kept.

    open_set.py relatives CATALOG SEED > MORE_ENTITIES
        for about half of the catalog's entities, one or two near names
        (sequels, subtitles, a shared head, a word changed), made of words of
        the catalog's other names: real catalogs are full of franchises, so
        the entity a query asks for is often missing while a sibling is
        there.  Deterministic for a seed; ids relative:NNNNN.

Used by deploy/fit-calibration.sh (on simulated queries) and
deploy/eval-open-set.sh (the measurement on dev); erd eval --open-set and
erd calibrate --open-set read what it writes.
"""
import hashlib
import json
import re
import sys


def key(s):
    return re.sub(r'[^a-z0-9]+', ' ', s.lower()).strip()


def removed(gold_id, other_half=False):
    return (int(hashlib.md5(gold_id.encode()).hexdigest()[:8], 16) < 2**31) != other_half


def names(e):
    return {key(n) for n in [e.get('name', '')] + list(e.get('aliases') or []) if key(n)}


def remove(catalog, queries, other_half=False):
    gone = set()
    with open(queries) as f:
        for line in f:
            if line.strip():
                q = json.loads(line)
                if q.get('entity_id') is not None and removed(q['entity_id'], other_half):
                    gone.add(q['entity_id'])
    ents = [json.loads(line) for line in open(catalog) if line.strip()]
    gone_names = set()
    for e in ents:
        if str(e['id']) in gone:
            gone_names |= names(e)
    kept = dropped = 0
    for e in ents:
        if str(e['id']) in gone or names(e) & gone_names:
            dropped += 1
            continue
        sys.stdout.write(json.dumps(e) + '\n')
        kept += 1
    print(f'open_set: {len(gone)} gold ids in the removed half; {dropped} entities of '
          f'{catalog} dropped (with those sharing their names), {kept} kept', file=sys.stderr)


def rename(domain):
    for line in sys.stdin:
        if line.strip():
            q = json.loads(line)
            q['domain'], q['qid'] = domain, f"{q.get('qid', '')}-{domain}"
            sys.stdout.write(json.dumps(q) + '\n')


def ood(domains, catalog=None):
    taken = set()
    if catalog:
        taken = {k for line in open(catalog) if line.strip() for k in names(json.loads(line))}
    n = dropped = 0
    for line in sys.stdin:
        text = line.strip()
        if not text:
            continue
        # a line of text is typed; an `erd simulate` record was spoken, and
        # its recogniser's n-best list is the query
        rec = json.loads(text) if text.startswith('{') else None
        spoken, nbest = (rec['spoken'], rec['nbest']) if rec else (text, [{'text': text}])
        if key(spoken) in taken:
            dropped += 1
            continue
        for d in domains:
            sys.stdout.write(json.dumps({'qid': f'ood{"s" if rec else ""}-{n:05d}', 'domain': d,
                                         'entity_id': None, 'nbest': nbest}) + '\n')
        n += 1
    if catalog:
        print(f'open_set: {n} out-of-domain utterances, {dropped} left out as catalog names',
              file=sys.stderr)


ARTICLES = ('the ', 'a ', 'an ')


def catalog_words(catalog, seed):
    """A seeded generator, the catalog's entities, the words of their names
    (longer than two letters) and every normalised name they take."""
    import random
    ents = [json.loads(line) for line in open(catalog) if line.strip()]
    words = [w for e in ents for w in e['name'].split() if len(w) > 2]
    return random.Random(seed), ents, words, {k for e in ents for k in names(e)}


def extend(catalog, seed):
    rnd, ents, words, taken = catalog_words(catalog, seed)
    n = 0
    for e in ents:
        if rnd.random() < 0.2:
            name = e['name']
            kind = rnd.randrange(3)
            more = ' '.join(rnd.choice(words) for _ in range(rnd.randint(1, 3)))
            if kind == 2 and not name.lower().startswith(ARTICLES):
                longer = 'The ' + name
            elif kind == 1:
                longer = more + ': ' + name
            else:
                longer = name + ': ' + more
            if key(longer) not in taken:
                taken.add(key(longer))
                e = dict(e, name=longer)
                n += 1
        sys.stdout.write(json.dumps(e) + '\n')
    print(f'open_set: {n} of {len(ents)} entities renamed to a longer title', file=sys.stderr)


SEQUEL = [' 2', ' 3', ' II', ' part two', ' returns', ' the sequel', ' revisited', ' reloaded',
          ' forever', ' begins']


def relatives(catalog, seed):
    rnd, ents, words, taken = catalog_words(catalog, seed)
    n = 0
    for e in ents:
        if rnd.random() >= 0.5:
            continue
        name, ws = e['name'], e['name'].split()
        for _ in range(rnd.choice([1, 1, 2])):
            kind = rnd.randrange(4)
            if kind == 0:
                rel = name + rnd.choice(SEQUEL)
            elif kind == 1:
                rel = name + ': ' + ' '.join(rnd.choice(words) for _ in range(rnd.randint(1, 3)))
            elif kind == 2 and len(ws) > 1:
                cut = rnd.randint(1, len(ws) - 1)
                rel = ' '.join(ws[:cut] + [rnd.choice(words) for _ in range(len(ws) - cut)])
            else:
                at = rnd.randrange(len(ws))
                rel = ' '.join(ws[:at] + [rnd.choice(words)] + ws[at + 1:])
            if key(rel) in taken:
                continue
            taken.add(key(rel))
            sys.stdout.write(json.dumps({'id': f'relative:{n:05d}', 'name': rel}) + '\n')
            n += 1
    print(f'open_set: {n} relatives of {len(ents)} entities', file=sys.stderr)


if __name__ == '__main__':
    if len(sys.argv) == 4 and sys.argv[1] == 'remove':
        remove(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 5 and sys.argv[1:3] == ['remove', '--other-half']:
        remove(sys.argv[3], sys.argv[4], other_half=True)
    elif len(sys.argv) == 3 and sys.argv[1] == 'rename':
        rename(sys.argv[2])
    elif len(sys.argv) == 4 and sys.argv[1] == 'extend':
        extend(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) == 4 and sys.argv[1] == 'relatives':
        relatives(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) >= 5 and sys.argv[1:3] == ['ood', '--catalog']:
        ood(sys.argv[4:], sys.argv[3])
    elif len(sys.argv) >= 3 and sys.argv[1] == 'ood':
        ood(sys.argv[2:])
    else:
        sys.exit(__doc__)
