"""History for bench/judges_replay.sh: 14 weeks of minute samples ending now.

Orders follow a daily curve (night dip to 30% of noon) and a weekly one; requests
likewise; errors are 1% with a nightly hour of 1 error in 3 requests at low traffic.
Two deploys a day (10:00 and 16:00 UTC) over the last 13 weeks; some releases are bad
(orders halve for the rest of their window)."""
import math, sys, time

out = sys.argv[1]
now = int(time.time()) // 60 * 60
start = now - 14 * 7 * 86400
bad = set()
deploys = []
for day in range(13 * 7):
    for hour in (10, 16):
        t = (now // 86400 - 13 * 7 + day) * 86400 + hour * 3600
        if t + 1800 < now:
            deploys.append(t)
            if len(deploys) % 17 == 0:
                bad.add(t)

def level(t):
    h = (t % 86400) / 3600
    daily = 0.3 + 0.7 * math.exp(-((h - 13) / 5) ** 2)
    return daily

def bad_at(t):
    return any(d <= t < d + 1800 for d in bad)

with open(f"{out}/history.om", "w") as f:
    for name in ("rw_orders", "rw_req_rate", "rw_err_ratio"):
        f.write(f"# TYPE {name} gauge\n")
        for t in range(start, now + 1, 60):
            l = level(t)
            if name == "rw_orders":
                v = 100 * l * (0.5 if bad_at(t) else 1.0)
            elif name == "rw_req_rate":
                v = 20 * l if not (3 <= (t % 86400) / 3600 < 4) else 0.05
            else:
                v = 0.01 if not (3 <= (t % 86400) / 3600 < 4) else 1 / 3
            f.write(f'{name}{{service="shop"}} {v:.6f} {t}\n')
    f.write("# EOF\n")
with open(f"{out}/deploys.txt", "w") as f:
    f.write("\n".join(str(d) for d in deploys) + "\n")
with open(f"{out}/rules.yaml", "w") as f:
    f.write("""watch:
  duration: 30m
  interval: 15s
rollback:
  command: ["true"]
rules:
  - name: error-ratio
    query: sum(rw_err_ratio)
    above: 0.05
    for: 1m
  - name: orders
    query: sum(rw_orders)
    below: 40
    no_data: ok
    for: 5m
""")
