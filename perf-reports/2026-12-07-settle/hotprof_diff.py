"""ns per message, ASYNC_FLUSH against SYNC_FLUSH, from hotprof.sh's OUT/{async,sync}.folded and
.json: inclusive and self, the largest increases. Usage: hotprof_diff.py OUT"""
import collections, json, re, sys


def load(d, tag):
    r = json.load(open(f'{d}/{tag}.json'))['results']
    per = r['broker_cpu']['us_per_message'] * 1000
    rows, total = [], 0
    for line in open(f'{d}/{tag}.folded'):
        stack, count = line.rstrip().rsplit(' ', 1)
        frames = [re.sub(r'::h[0-9a-f]{16}$', '', f).replace('{{closure}}', '{c}') for f in stack.split(';')]
        rows.append((frames, int(count)))
        total += int(count)
    inclusive, own = collections.Counter(), collections.Counter()
    for frames, count in rows:
        ns = count * per / total
        for frame in set(frames):
            inclusive[frame] += ns
        own[frames[-1]] += ns
    return per, inclusive, own


d = sys.argv[1]
pa, A, As = load(d, 'async')
pb, B, Bs = load(d, 'sync')
print(f'broker CPU per message: ASYNC_FLUSH {pa:.0f} ns, SYNC_FLUSH {pb:.0f} ns')
print('\nInclusive ns per message, the 45 largest increases (async, sync, sync-async):')
for k in sorted(set(A) | set(B), key=lambda k: -(B[k] - A[k]))[:45]:
    print('%7.0f %7.0f %7.0f  %s' % (A[k], B[k], B[k] - A[k], k[:140]))
print('\nSelf ns per message, the 30 largest increases:')
for k in sorted(set(As) | set(Bs), key=lambda k: -(Bs[k] - As[k]))[:30]:
    print('%7.0f %7.0f %7.0f  %s' % (As[k], Bs[k], Bs[k] - As[k], k[:140]))
