"""One row per catch-up in raw-catchup*/: transfer rate, dd before it, their ratio, master RSS."""
import glob, json, statistics
rows = []
for f in sorted(glob.glob('raw-catchup*/catchup*.json')):
    if f.endswith('-fill.json'):
        continue
    j = json.load(open(f))
    for r in j['repeats']:
        dd = next(d['mb_per_s'] for d in r['dd_before'] if d['bs'] == '1M')
        rows.append((f, r['repeat'], r['mb_per_s_transfer'], dd, r['mb_per_s_transfer'] / dd,
                     r['master_rss_min_kib'] // 1024, r['master_rss_max_kib'] // 1024, r['equal']))
print('| file | repeat | transfer MB/s | dd before MB/s | transfer / dd | master RSS MiB | equal |')
print('|---|---:|---:|---:|---:|---:|---|')
for f, rep, t, dd, ratio, lo, hi, eq in rows:
    print(f'| {f} | {rep} | {t:,.0f} | {dd:,.0f} | {ratio:.0%} | {lo}–{hi} | {eq} |')
for key in ('5g', 'ram.json', 'ram-2.json', 'ab-B', 'ab-A'):
    sel = [r[4] for r in rows if key in r[0]]
    if sel:
        print(f'\n{key}: median transfer/dd {statistics.median(sel):.0%} over {len(sel)}', end='')
print()
