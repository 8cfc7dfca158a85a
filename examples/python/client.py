"""medassist from Python: settle over gRPC, read an error's reasons, then the
same over HTTP/JSON.

    python -m venv venv && venv/bin/pip install -r examples/python/requirements.txt
    medassist serve --http-listen 127.0.0.1:8080 &
    venv/bin/python examples/python/client.py --grpc 127.0.0.1:50051 --http http://127.0.0.1:8080

The stubs are generated from proto/ at start (grpc_tools.protoc), so they
always match the server. An error's reasons are in its details, a
google.rpc.Status: plain grpcio cannot decode them, grpcio-status can
(rpc_status.from_call). When the server has [auth], put the token in
MEDASSIST_TOKEN (it needs the roster_admin and hospital roles' calls: use
an open server on loopback to run it whole). Exits 1 if any answer is not what the README says.
"""

import argparse
import importlib
import os
import sys
import tempfile
import uuid

import grpc
import requests
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from grpc_tools import protoc

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_DIR = os.path.join(HERE, "..", "..", "proto")
PROTOS = ["settlement", "usage", "roster", "policy", "admin"]


def generate_stubs():
    """Compiles proto/ into a temporary directory and imports the modules."""
    out = tempfile.mkdtemp(prefix="medassist-stubs-")
    well_known = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    files = [f"medassist/v1/{name}.proto" for name in PROTOS]
    files += ["medassist/v1/field_rules.proto", "google/api/annotations.proto", "google/api/http.proto"]
    args = ["protoc", f"-I{PROTO_DIR}", f"-I{well_known}", f"--python_out={out}", f"--grpc_python_out={out}"]
    if protoc.main(args + files) != 0:
        sys.exit("cannot compile proto/")
    sys.path.insert(0, out)
    return {
        name: (importlib.import_module(f"medassist.v1.{name}_pb2"), importlib.import_module(f"medassist.v1.{name}_pb2_grpc"))
        for name in ("settlement", "roster")
    }


PATIENT = "320602196001010612"
CLAIM = {
    "hospital_id": "H001",
    # A claim number of this run's own: the README's commands settled and
    # reversed ZY2026-000123 already, and a used number never pays again.
    "claim_id": "PY-" + uuid.uuid4().hex[:16],
    "patient_id": PATIENT,
    "admission_date": "2026-03-01",
    "discharge_date": "2026-03-20",
    "diagnosis_codes": ["N18.500"],
    "total_cost": "50000.00",
    "in_scope_cost": "42000.00",
    "basic_insurance_paid": "25200.00",
    "critical_illness_paid": "6300.00",
}
# Wrong on purpose: three decimals, and an amount left out (send zero as "0").
BAD_CLAIM = dict(CLAIM, claim_id="ZY2026-BAD", total_cost="50000.001", in_scope_cost="")

failures = []


def check(what, ok):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def what_it_means(answer, amount):
    """How to read a settle or reverse answer: by its answer, never by the amount alone."""
    return {
        "SETTLE_ANSWER_QUOTED": f"a quote of {amount}: nothing is paid yet",
        "SETTLE_ANSWER_SETTLED": f"pays {amount}",
        "SETTLE_ANSWER_ALREADY_SETTLED": f"already settled: {amount} was paid once, not again",
        "SETTLE_ANSWER_ALREADY_REVERSED": "already reversed: nothing is paid; settle a corrected bill under a new claim number",
        "SETTLE_ANSWER_REVERSED": f"reversed: {amount} goes back to the year's cap",
    }.get(answer, f"unknown answer {answer}: do not pay")


def over_grpc(stubs, target, token):
    settlement_pb2, settlement_grpc = stubs["settlement"]
    roster_pb2, roster_grpc = stubs["roster"]
    metadata = [("authorization", f"Bearer {token}")] if token else []
    with grpc.insecure_channel(target) as channel:
        roster = roster_grpc.RosterServiceStub(channel)
        person = roster_pb2.Person(
            patient_id=PATIENT,
            name="张三",
            region_code="320602",
            enrollments=[roster_pb2.Enrollment(kind=roster_pb2.ENROLLMENT_KIND_DIBAO, valid_from="2020-01-01")],
        )
        roster.UpsertPerson(roster_pb2.UpsertPersonRequest(person=person), metadata=metadata)

        settlements = settlement_grpc.SettlementServiceStub(channel)
        answer = settlements.Settle(settlement_pb2.SettleRequest(**CLAIM), metadata=metadata)
        meaning = what_it_means(settlement_pb2.SettleAnswer.Name(answer.answer), answer.settlement.assistance_amount)
        print(f"gRPC: {meaning}")
        check("gRPC Settle pays 7350.00", meaning == "pays 7350.00")

        try:
            settlements.Settle(settlement_pb2.SettleRequest(**BAD_CLAIM), metadata=metadata)
            check("gRPC refuses the bad claim", False)
        except grpc.RpcError as error:
            print(f"gRPC: {error.code().name}: {error.details()}")
            status = rpc_status.from_call(error)
            reasons = {}
            for detail in status.details if status else []:
                if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                    bad_request = error_details_pb2.BadRequest()
                    detail.Unpack(bad_request)
                    for violation in bad_request.field_violations:
                        print(f"  {violation.field}: {violation.description}")
                        reasons[violation.field] = violation.description
            check("gRPC error is INVALID_ARGUMENT", error.code() == grpc.StatusCode.INVALID_ARGUMENT)
            check("gRPC BadRequest names total_cost with its reason", "fen" in reasons.get("total_cost", ""))
            check("gRPC BadRequest names in_scope_cost", "in_scope_cost" in reasons)


def over_http(base, token):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = requests.post(f"{base}/v1/settlements:settle", json=CLAIM, headers=headers, timeout=10)
    body = answer.json()
    meaning = what_it_means(body["answer"], body["settlement"]["assistanceAmount"])
    print(f"HTTP {answer.status_code}: {meaning}")
    check("HTTP Settle answers 200", answer.status_code == 200)
    check("HTTP Settle replays the gRPC settlement", body["answer"] == "SETTLE_ANSWER_ALREADY_SETTLED")

    key = {"hospitalId": CLAIM["hospital_id"], "claimId": CLAIM["claim_id"]}
    reversed_ = requests.post(f"{base}/v1/settlements:reverse", json=dict(key, reason="bill corrected"), headers=headers, timeout=10).json()
    print(f"HTTP Reverse: {what_it_means(reversed_['answer'], reversed_['settlement']['assistanceAmount'])}")
    check("HTTP Reverse reverses", reversed_["answer"] == "SETTLE_ANSWER_REVERSED")
    retried = requests.post(f"{base}/v1/settlements:settle", json=CLAIM, headers=headers, timeout=10).json()
    meaning = what_it_means(retried["answer"], retried["settlement"]["assistanceAmount"])
    print(f"HTTP Settle again: {meaning}")
    check("a retried Settle of a reversed claim pays nothing", retried["answer"] == "SETTLE_ANSWER_ALREADY_REVERSED" and "pays" not in meaning)

    error = requests.post(f"{base}/v1/settlements:settle", json=BAD_CLAIM, headers=headers, timeout=10)
    status = error.json()
    print(f"HTTP {error.status_code}: {status['message']}")
    reasons = {}
    for detail in status.get("details", []):
        if detail.get("@type") == "type.googleapis.com/google.rpc.BadRequest":
            for violation in detail["fieldViolations"]:
                print(f"  {violation['field']}: {violation['description']}")
                reasons[violation["field"]] = violation["description"]
    check("HTTP error is 400 with code 3", error.status_code == 400 and status["code"] == 3)
    # HTTP names fields as JSON does (lowerCamelCase); gRPC keeps the proto names.
    check("HTTP BadRequest names totalCost with its reason", "fen" in reasons.get("totalCost", ""))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grpc", default="127.0.0.1:50051", help="gRPC address")
    parser.add_argument("--http", default="http://127.0.0.1:8080", help="HTTP/JSON base URL")
    args = parser.parse_args()
    # From the environment, never the command line (where ps shows it).
    token = os.environ.get("MEDASSIST_TOKEN")
    stubs = generate_stubs()
    over_grpc(stubs, args.grpc, token)
    over_http(args.http.rstrip("/"), token)
    if failures:
        sys.exit(f"{len(failures)} check(s) failed")
    print("all checks passed")


if __name__ == "__main__":
    main()
