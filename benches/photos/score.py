# Score a scan against the truth file: precision, recall, clean removed.
import sys, json
out, truth = sys.argv[1], json.load(open(sys.argv[2]))
rep = json.load(open(f'{out}/report.json'))
removed = {r['id'] for r in rep['removals'] if r['stage'] == 'recurrence'}
pos = {k for k, v in truth.items() if v is not None}
tp = len(removed & pos); fp = len(removed - pos)
loc = 0
for r in rep['removals']:
    t = truth.get(r['id'])
    if t and r.get('original_box'):
        x, y, w, h = r['original_box']; tx, ty, s = t
        ix = max(0, min(x + w, tx + s) - max(x, tx)) * max(0, min(y + h, ty + s) - max(y, ty))
        loc += ix > 0
s = rep.get('recurrence') or {}
print(f"poisons {len(pos)} removed {len(removed)} tp {tp} fp {fp} precision {tp/max(1,len(removed)):.3f} recall {tp/max(1,len(pos)):.3f} localised {loc} | entries {s.get('index_entries')} bytes/img {s.get('index_bytes',0)/max(1,rep['total']):.0f} cores {s.get('candidates')} verified_imgs {s.get('verified_images')} dup_groups {len(s.get('duplicate_groups',[]))} patches {s.get('patches')}")
