"""Medians per (config, size) for A and B of an ab.sh run: msgs/s, p99 and master CPU µs/msg."""
import glob, json, os, statistics, sys
def rows(d):
    out = {}
    for f in glob.glob(d + '/*-pass*.json'):
        if f.endswith(('cpu.json', 'lag.json', 'background.json', 'segments.json')):
            continue
        tag = os.path.basename(f)[:-5].rsplit('-pass', 1)[0]
        r = json.load(open(f))['results']
        n = r['acked']['messages']
        m = json.load(open(f[:-5] + '.master-cpu.json'))['cpu_s']
        out.setdefault(tag, []).append((r['acked']['msgs_per_s'], r['send_latency']['p99_us'], m / n * 1e6))
    return out
A, B = rows(sys.argv[1] + '/A'), rows(sys.argv[1] + '/B')
print('| config | msgs/s A | msgs/s B | B/A | p99 µs A / B | master µs/msg A / B | passes |')
print('|---|---:|---:|---:|---:|---:|---:|')
for tag in sorted(A):
    a, b = A[tag], B.get(tag, [])
    med = lambda xs, i: statistics.median(x[i] for x in xs)
    print(f'| {tag} | {med(a,0):,.0f} | {med(b,0):,.0f} | {med(b,0)/med(a,0):.2f} | {med(a,1):,.0f} / {med(b,1):,.0f} | {med(a,2):.1f} / {med(b,2):.1f} | {len(a)} / {len(b)} |')
sizes = sorted({t.split('-')[1] for t in A})
for s in sizes:
    for name, X in (('A', A), ('B', B)):
        if f'sync-{s}' in X and f'async-{s}' in X:
            r = statistics.median(x[0] for x in X[f'sync-{s}']) / statistics.median(x[0] for x in X[f'async-{s}'])
            print(f'\n{name}: SYNC_MASTER / ASYNC_MASTER at {s} B = {r:.2f}', end='')
print()
