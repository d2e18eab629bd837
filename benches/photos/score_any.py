# Score a scan against a truth file, every stage counted: python3 score_any.py OUT [TRUTH_JSON]
import sys, json, collections
out = sys.argv[1]; truth = json.load(open(sys.argv[2])) if len(sys.argv) > 2 else {}
rep = json.load(open(f'{out}/report.json'))
rem = {r['id']: r['stage'] for r in rep['removals']}
pos = {k for k, v in truth.items() if v is not None}
tp = len(set(rem) & pos)
print(f"poisons {len(pos)} removed {len(rem)} tp {tp} clean_removed {len(rem)-tp} recall {tp/max(1,len(pos)):.3f} precision {tp/max(1,len(rem)):.3f} stages {dict(collections.Counter(rem.values()))}")
