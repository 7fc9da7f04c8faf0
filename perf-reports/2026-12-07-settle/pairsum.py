import json,sys,glob,os
for d in sys.argv[1:]:
    for f in sorted(glob.glob(d+'/*-pass*.json')):
        if f.endswith(('cpu.json','lag.json','background.json','segments.json')): continue
        r=json.load(open(f))['results']
        lat=r['send_latency']
        tag=os.path.basename(f)[:-5]
        m=json.load(open(f[:-5]+'.master-cpu.json'))['cpu_s']
        s=json.load(open(f[:-5]+'.slave-cpu.json'))['cpu_s'] if os.path.exists(f[:-5]+'.slave-cpu.json') else 0
        n=r['acked']['messages']
        print('%-10s %-18s %7d  m %.2f s %.2f us/msg  p50 %6d p99 %6d p99.9 %6d  err %s'%(d[-10:], tag, r['acked']['msgs_per_s'], m/n*1e6, s/n*1e6, lat['p50_us'], lat['p99_us'], lat['p99_9_us'], len(r['errors'])+len(r['events'])))
