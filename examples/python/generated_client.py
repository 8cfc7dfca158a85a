"""medassist through a client generated from its OpenAPI document alone.

    medassist openapi > openapi.json
    venv/bin/pip install openapi-python-client==0.29.1
    venv/bin/openapi-python-client generate --path openapi.json --meta none \
        --output-path generated/medassist_client \
        --config examples/python/openapi-python-client.yaml
    venv/bin/python examples/python/generated_client.py --client-dir generated \
        --http http://127.0.0.1:8080

Nothing here is written by hand for medassist's wire format: the request and
answer types, dates as datetime.date, the enums and the error type
(google.rpc.Status, with its BadRequest field violations) all come from the
document. The script puts the README's patient on the roster, settles the
README's claim (under a claim number of its own, so it can run after the
other examples), reads the usage back by a POST that keeps the resident ID
out of the URL, and sends a bad amount to get a typed validation error.
Exits 1 if any answer is not what the README says.
"""

import argparse
import datetime
import os
import sys

failures = []


def check(what, ok):
    print(f"  {'ok  ' if ok else 'FAIL'} {what}")
    if not ok:
        failures.append(what)


PATIENT = "320602196001010612"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--client-dir", required=True, help="the directory holding the generated medassist_client package")
    parser.add_argument("--http", default="http://127.0.0.1:8080", help="HTTP/JSON base URL")
    parser.add_argument("--token", default=os.environ.get("MEDASSIST_TOKEN"), help="bearer token")
    parser.add_argument("--claim", default="ZY2026-GEN-1", help="the claim number to settle under")
    args = parser.parse_args()
    sys.path.insert(0, args.client_dir)

    from medassist_client import AuthenticatedClient, Client
    from medassist_client.api.roster_service import roster_service_upsert_person
    from medassist_client.api.settlement_service import settlement_service_settle
    from medassist_client.api.usage_service import usage_service_get_annual_usage
    from medassist_client.models import (
        GoogleRpcStatus,
        MedassistV1Enrollment,
        MedassistV1EnrollmentKind,
        MedassistV1GetAnnualUsageRequest,
        MedassistV1Person,
        MedassistV1SettleAnswer,
        MedassistV1SettleRequest,
        MedassistV1SettleResponse,
    )

    base = args.http.rstrip("/")
    client = AuthenticatedClient(base_url=base, token=args.token) if args.token else Client(base_url=base)

    person = MedassistV1Person(
        patient_id=PATIENT,
        name="张三",
        region_code="320602",
        enrollments=[MedassistV1Enrollment(kind=MedassistV1EnrollmentKind.ENROLLMENT_KIND_DIBAO, valid_from=datetime.date(2020, 1, 1))],
    )
    stored = roster_service_upsert_person.sync(client=client, body=person)
    print(f"UpsertPerson: {type(stored).__name__}")
    check("the person is on the roster", isinstance(stored, MedassistV1Person) and stored.patient_id == PATIENT)

    claim = MedassistV1SettleRequest(
        hospital_id="H001",
        claim_id=args.claim,
        patient_id=PATIENT,
        admission_date=datetime.date(2026, 3, 1),
        discharge_date=datetime.date(2026, 3, 20),
        diagnosis_codes=["N18.500"],
        total_cost="50000.00",
        in_scope_cost="42000.00",
        basic_insurance_paid="25200.00",
        critical_illness_paid="6300.00",
    )
    answer = settlement_service_settle.sync(client=client, body=claim)
    if not isinstance(answer, MedassistV1SettleResponse):
        sys.exit(f"Settle did not settle: {answer}")
    paid = answer.settlement.assistance_amount
    print(f"Settle: {answer.answer.value}, assistance {paid}, business day {answer.settlement.settled_day}")
    settled = answer.answer in (MedassistV1SettleAnswer.SETTLE_ANSWER_SETTLED, MedassistV1SettleAnswer.SETTLE_ANSWER_ALREADY_SETTLED)
    check("the README claim settles and pays 7350.00", settled and paid == "7350.00")
    check("the settlement says its business day", len(answer.settlement.settled_day) == 10)

    usage = usage_service_get_annual_usage.sync(client=client, body=MedassistV1GetAnnualUsageRequest(patient_id=PATIENT, year=2026))
    print(f"GetAnnualUsage: {type(usage).__name__}, remaining {getattr(usage, 'remaining', '?')}")
    check("the usage is read back", not isinstance(usage, GoogleRpcStatus) and usage.patient_id == PATIENT)

    bad = MedassistV1SettleRequest.from_dict(dict(claim.to_dict(), claimId=args.claim + "-BAD", totalCost="1.001"))
    detailed = settlement_service_settle.sync_detailed(client=client, body=bad)
    error = detailed.parsed
    print(f"Settle with a bad amount: HTTP {int(detailed.status_code)}, {type(error).__name__}: {getattr(error, 'message', error)}")
    check("a bad amount is HTTP 400 with a typed google.rpc.Status", int(detailed.status_code) == 400 and isinstance(error, GoogleRpcStatus))
    violations = {}
    for detail in error.details if isinstance(error, GoogleRpcStatus) else []:
        if detail.type_ == "type.googleapis.com/google.rpc.BadRequest":
            for violation in detail.field_violations:
                print(f"  {violation.field}: {violation.description}")
                violations[violation.field] = violation.description
    check("INVALID_ARGUMENT (3)", isinstance(error, GoogleRpcStatus) and error.code == 3)
    check("the BadRequest names totalCost with its reason", "fen" in violations.get("totalCost", ""))

    if failures:
        sys.exit(f"{len(failures)} check(s) failed")
    print("all checks passed")


if __name__ == "__main__":
    main()
