#!/usr/bin/env python3
# Usage: benches/roster_csv.py N FILE [ENCODING]  (ENCODING: utf-8 or gbk)
import sys
W = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
C = "10X98765432"
def rid(body):
    return body + C[sum(int(d) * w for d, w in zip(body, W)) % 11]
n = int(sys.argv[1]); out = open(sys.argv[2], "w", encoding=sys.argv[3] if len(sys.argv) > 3 else "utf-8")
names = ["张三", "李四", "王五", "赵六", "欧阳娜娜"]
out.write("patient_id,name,region_code,psychiatric_disability_grade,paralysis_certified,enrollment_kind,valid_from,valid_to,exit\n")
for i in range(n):
    year, seq = 1930 + i // 999, i % 999 + 1
    pid = rid(f"320602{year}0101{seq:03d}")
    name = names[i % 5]
    region = "32060" + str(2 + i % 3)
    if i % 7 == 0:
        out.write(f"{pid},{name},{region},0,false,DIBAO,2020-01-01,2025-11-30,GRADUAL_EXIT\n")
        out.write(f"{pid},{name},{region},0,false,REGISTERED_POOR,2016-01-01,2020-12-31,LEFT_POVERTY\n")
    else:
        out.write(f"{pid},{name},{region},0,false,DIBAO,2020-01-01,,\n")
