#!/usr/bin/env python3
"""Share of samples of a folded profile in io_uring worker threads (by operation) and in the
shard's consume-queue block writes. Usage: cq_cost.py FOLDED"""
import sys,collections
f=sys.argv[1]
tot=0; c=collections.Counter()
for line in open(f):
    stack,n=line.rsplit(' ',1); n=int(n); tot+=n
    fr=stack.split(';')
    if fr[0].startswith('iou-wrk'):
        op=next((x for x in fr if x.startswith('io_') and x not in('io_wq_worker','io_worker_handle_work','io_wq_submit_work','io_issue_sqe')),'other')
        c['iowq:'+op]+=n
    elif any('write_blocks' in x for x in fr): c['shard:cq write_blocks']+=n
    elif any('sync_file' in x for x in fr): c['shard:cq sync_file']+=n
    elif any('DirectFile' in x and 'drop' in x.lower() for x in fr): c['shard:drop file']+=n
print('total',tot)
for k,v in c.most_common(): print(f'{v/tot*100:6.2f}% {k}')
