import sys,re
rows={}
order=[]
for f in sys.argv[1:]:
    for line in open(f):
        m=re.match(r'(\S+) \S+\s+produce\s+(\d+)\s+[\d.]+\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)',line)
        if m:
            n=m.group(1); rows.setdefault(n,{}); order.append(n)
            rows[n].update(rate=int(m.group(2)),p50=float(m.group(3)),p90=float(m.group(4)),p99=float(m.group(5)),p999=float(m.group(6)))
        m=re.match(r'(\S+) broker cpu s: (\d+)/100',line)
        if m: rows[m.group(1)]['cpu']=int(m.group(2))/100
        m=re.match(r'(\S+) riffle_device_flushes_total\S* (\d+)',line)
        if m: rows[m.group(1)]['flushes']=int(m.group(2))
        m=re.match(r'\s+log n=(\d+)',line)
        if m and order: rows[order[-1]]['waits']=int(m.group(1))
print("| run | msgs/s | p50 ms | p99 ms | p99.9 ms | broker CPU s | CPU s/GB | device flushes | log flush waits |")
print("|---|---|---|---|---|---|---|---|---|")
for n in order:
    r=rows[n]; gb=r['rate']*1024*13/1e9
    print(f"| {n} | {r['rate']/1000:.0f} k | {r['p50']:.2f} | {r['p99']:.2f} | {r['p999']:.1f} | {r.get('cpu',0):.2f} | {r.get('cpu',0)/gb:.2f} | {r.get('flushes','-')} | {r.get('waits','-')} |")
