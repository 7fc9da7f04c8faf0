import json,sys,re,collections
d=sys.argv[1]
def load(tag):
    r=json.load(open(f'{d}/{tag}-1024-pass1.json'))['results']; n=r['acked']['messages']
    cpu=json.load(open(f'{d}/{tag}-1024-pass1.master-cpu.json'))['cpu_s']
    stacks=[]; tot=0
    for line in open(f'{d}/{tag}.folded'):
        st,c=line.rstrip().rsplit(' ',1); c=int(c); tot+=c; stacks.append((st.split(';'),c))
    scale=cpu/n*1e9/tot
    incl=collections.Counter()
    for fr,c in stacks:
        seen=set()
        for f in fr:
            f=re.sub(r'::h[0-9a-f]{16}$','',f)
            f=re.sub(r'\{\{closure\}\}','{c}',f)
            if f in seen: continue
            seen.add(f); incl[f]+=c*scale
    return cpu/n*1e9,incl
na,A=load('async'); nb,B=load('sync')
print(f'async {na:.0f} sync {nb:.0f} ns/msg')
pat=re.compile(sys.argv[2]) if len(sys.argv)>2 else None
keys=sorted(set(A)|set(B),key=lambda k:-max(A.get(k,0),B.get(k,0)))
for k in keys:
    if pat and not pat.search(k): continue
    if max(A.get(k,0),B.get(k,0))<40: continue
    print('%8.0f %8.0f %8.0f  %s'%(A.get(k,0),B.get(k,0),B.get(k,0)-A.get(k,0),k[:150]))
