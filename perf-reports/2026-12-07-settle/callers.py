import json,sys,re,collections
d=sys.argv[1]; target=re.compile(sys.argv[2]); depth=int(sys.argv[3]) if len(sys.argv)>3 else 1
def load(tag):
    r=json.load(open(f'{d}/{tag}-1024-pass1.json'))['results']; n=r['acked']['messages']
    cpu=json.load(open(f'{d}/{tag}-1024-pass1.master-cpu.json'))['cpu_s']
    stacks=[]; tot=0
    for line in open(f'{d}/{tag}.folded'):
        st,c=line.rstrip().rsplit(' ',1); c=int(c); tot+=c; stacks.append((st.split(';'),c))
    scale=cpu/n*1e9/tot
    out=collections.Counter()
    for fr,c in stacks:
        fr=[re.sub(r'\{\{closure\}\}','{c}',f) for f in fr]
        for i,f in enumerate(fr):
            if target.search(f):
                # callers: skip generic alloc frames
                j=i-1; chain=[]
                while j>=0 and len(chain)<depth:
                    if not re.search(r'alloc|Allocator|rust_alloc|RawVec|with_capacity|Vec<|Box<|BytesMut|bytes::|core::ptr|realloc|grow|reserve',fr[j]): chain.append(fr[j][:90])
                    j-=1
                out[' <- '.join(chain)]+=c*scale
                break
    return out
A=load('async'); B=load('sync')
for k in sorted(set(A)|set(B),key=lambda k:-(B.get(k,0)-A.get(k,0)))[:25]:
    print('%7.0f %7.0f %7.0f  %s'%(A.get(k,0),B.get(k,0),B.get(k,0)-A.get(k,0),k))
