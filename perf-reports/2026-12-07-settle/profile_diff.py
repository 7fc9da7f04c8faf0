"""ns per acknowledged message, ASYNC_MASTER against SYNC_MASTER, from folded DWARF stacks.

  profile_diff.py DIR [REGEX]              inclusive cost of every frame (matching REGEX)
  profile_diff.py DIR --callers REGEX [N]  who calls the frames matching REGEX (N callers up,
                                           skipping allocation plumbing)

DIR holds {async,sync}.folded (perf script | inferno-collapse-perf) and run.sh's
{async,sync}-1024-pass1.json and .master-cpu.json. A stack's samples are scaled so that all
samples together are the master's CPU seconds divided by the messages acknowledged.
"""
import collections, json, re, sys

PLUMBING = re.compile(r'alloc|Allocator|rust_alloc|RawVec|with_capacity|Vec<|Box<|BytesMut|bytes::|'
                      r'core::ptr|realloc|grow|reserve')


def stacks(d, tag):
    r = json.load(open(f'{d}/{tag}-1024-pass1.json'))['results']
    cpu = json.load(open(f'{d}/{tag}-1024-pass1.master-cpu.json'))['cpu_s']
    rows, total = [], 0
    for line in open(f'{d}/{tag}.folded'):
        stack, count = line.rstrip().rsplit(' ', 1)
        frames = [re.sub(r'::h[0-9a-f]{16}$', '', f).replace('{{closure}}', '{c}')
                  for f in stack.split(';')]
        rows.append((frames, int(count)))
        total += int(count)
    per_message = cpu / r['acked']['messages'] * 1e9
    return per_message, [(frames, count * per_message / total) for frames, count in rows]


def inclusive(rows):
    out = collections.Counter()
    for frames, ns in rows:
        for frame in set(frames):
            out[frame] += ns
    return out


def callers(rows, target, depth):
    out = collections.Counter()
    for frames, ns in rows:
        for i, frame in enumerate(frames):
            if target.search(frame):
                chain = [f[:90] for f in reversed(frames[:i]) if not PLUMBING.search(f)][:depth]
                out[' <- '.join(chain)] += ns
                break
    return out


def main():
    d = sys.argv[1]
    (na, a), (nb, b) = stacks(d, 'async'), stacks(d, 'sync')
    if len(sys.argv) > 3 and sys.argv[2] == '--callers':
        depth = int(sys.argv[4]) if len(sys.argv) > 4 else 1
        A, B = callers(a, re.compile(sys.argv[3]), depth), callers(b, re.compile(sys.argv[3]), depth)
        keys = sorted(set(A) | set(B), key=lambda k: -(B[k] - A[k]))[:25]
    else:
        print(f'async {na:.0f} sync {nb:.0f} ns/msg')
        pattern = re.compile(sys.argv[2]) if len(sys.argv) > 2 else None
        A, B = inclusive(a), inclusive(b)
        keys = [k for k in sorted(set(A) | set(B), key=lambda k: -max(A[k], B[k]))
                if max(A[k], B[k]) >= 40 and (pattern is None or pattern.search(k))]
    for k in keys:
        print('%8.0f %8.0f %8.0f  %s' % (A[k], B[k], B[k] - A[k], k[:150]))


if __name__ == '__main__':
    main()
