"""The Worker's IAM policy (infra-aws/worker-iam.yaml), checked without AWS and without the Worker.

The template is read with cfn-lint's decoder, its intrinsic functions are resolved for given
parameter values (as CloudFormation would), and the resulting policies (WorkerPolicy, and
WorkerAdoptionPolicy while AllowAdoption=true) are evaluated together for the requests a leaked key
could make, with the IAM policy simulator's semantics: an explicit Deny wins, otherwise
every resource of the request needs an Allow; a condition on a key the request does not carry is
false, except for negated operators (StringNotEquals), `Null: true` and `ForAllValues`, which are
true. A request is authorized per resource (CreateUser: the new user and each profile it names).

Nothing here starts a process; it runs alone with `.venv/bin/pytest -q tests/e2e/test_infra_policy.py`.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from cfnlint.decode import decode

TEMPLATE = Path(__file__).resolve().parents[2] / "infra-aws" / "worker-iam.yaml"
ACCOUNT, REGION = "111122223333", "us-east-1"
INSTANCE = "0f1e2d3c-4b5a-4697-8877-665544332211"
OTHER_INSTANCE = "99999999-4b5a-4697-8877-665544332211"
I_ARN = f"arn:aws:connect:{REGION}:{ACCOUNT}:instance/{INSTANCE}"
SP_AGENT = f"{I_ARN}/security-profile/aaaaaaaa-0000-4000-8000-000000000001"
SP_SUPERVISOR = f"{I_ARN}/security-profile/aaaaaaaa-0000-4000-8000-000000000002"
SP_ADMIN = f"{I_ARN}/security-profile/aaaaaaaa-0000-4000-8000-00000000ad01"
RP_BASIC = f"{I_ARN}/routing-profile/bbbbbbbb-0000-4000-8000-000000000001"
RP_OTHER = f"{I_ARN}/routing-profile/bbbbbbbb-0000-4000-8000-000000000009"
NEW_USER = f"{I_ARN}/agent/cccccccc-0000-4000-8000-000000000001"
ADMIN_USER = f"{I_ARN}/agent/cccccccc-0000-4000-8000-0000000000ad"
MANAGED = {"managedBy": "okta-edge-hooks", "oktaUserId": "00u1abcdefghijklmn01"}
WORKER_TAGS = {"managedBy": "okta-edge-hooks", "oktaUserId": "00u1abcdefghijklmn02"}
USER_WRITES = ("connect:UpdateUserSecurityProfiles", "connect:UpdateUserRoutingProfile",
               "connect:UpdateUserIdentityInfo", "connect:DeleteUser")
CONNECT_PARAMS = {
    "OriginationIdentityArns": f"arn:aws:sms-voice:{REGION}:{ACCOUNT}:pool/pool-0123456789abcdef",
    "ConnectInstanceId": INSTANCE,
    "AllowedSecurityProfileArns": f"{SP_AGENT},{SP_SUPERVISOR}",
}


@pytest.fixture(scope="module")
def template():
    tpl, matches = decode(str(TEMPLATE))
    assert not matches, matches
    return tpl


# ---- a small CloudFormation resolver ---------------------------------------------------------------
NOVALUE = object()


class MissingParameter(Exception):
    pass


class Stack:
    def __init__(self, tpl, overrides: dict[str, str]):
        self.tpl = tpl
        self.params = {}
        for name, spec in tpl["Parameters"].items():
            if name in overrides:
                raw = overrides[name]
            elif "Default" in spec:
                raw = str(spec["Default"])
            else:
                raise MissingParameter(name)  # CloudFormation: "Parameters: [name] must have values"
            value = raw.split(",") if spec["Type"] == "CommaDelimitedList" else raw
            pattern = spec.get("AllowedPattern")
            if pattern:
                for item in value if isinstance(value, list) else [value]:
                    if not re.fullmatch(pattern, item):
                        raise ValueError(f"{name}: {item!r} does not match {pattern}")
            self.params[name] = value

    def rules_failing(self) -> list[str]:
        failing = []
        for name, rule in self.tpl.get("Rules", {}).items():
            if "RuleCondition" in rule and not self.eval(rule["RuleCondition"]):
                continue
            if not all(self.eval(a["Assert"]) for a in rule["Assertions"]):
                failing.append(name)
        return failing

    def condition(self, name):
        return self.eval(self.tpl["Conditions"][name])

    def ref(self, name):
        pseudo = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT,
                  "AWS::NoValue": NOVALUE}
        if name in pseudo:
            return pseudo[name]
        if name in self.params:
            return self.params[name]
        return name  # a resource: its physical name does not matter here

    def eval(self, node):
        if isinstance(node, list):
            return [v for v in (self.eval(n) for n in node) if v is not NOVALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (k, v), = node.items()
            if k == "Ref":
                return self.ref(v)
            if k == "Condition":
                return self.condition(v)
            if k == "Fn::If":
                return self.eval(v[1] if self.condition(v[0]) else v[2])
            if k == "Fn::Sub":
                text, names = (v, {}) if isinstance(v, str) else (v[0], self.eval(v[1]))
                return re.sub(r"\$\{([^}!]+)\}",
                              lambda m: str(names[m[1]] if m[1] in names else self.ref(m[1])), text)
            if k == "Fn::Join":
                return v[0].join(self.eval(v[1]))
            if k == "Fn::Split":
                return self.eval(v[1]).split(v[0])
            if k == "Fn::Select":
                return self.eval(v[1])[int(v[0])]
            if k == "Fn::Equals":
                a, b = self.eval(v)
                return a == b
            if k == "Fn::Not":
                return not self.eval(v[0])
            if k == "Fn::And":
                return all(self.eval(v))
            if k == "Fn::Or":
                return any(self.eval(v))
            if k == "Fn::Contains":
                return self.eval(v[1]) in self.eval(v[0])
            if k == "Fn::GetAtt":
                return f"arn:aws:iam::{ACCOUNT}:user/{v[0]}"
        out = {}
        for k, v in node.items():
            r = self.eval(v)
            if r is not NOVALUE:
                out[k] = r
        return out

    def policies(self) -> dict[str, list[dict]]:
        """The statements of each managed policy the stack creates (those whose Condition holds)."""
        out = {}
        for name, res in self.tpl["Resources"].items():
            if res["Type"] != "AWS::IAM::ManagedPolicy":
                continue
            if "Condition" in res and not self.condition(res["Condition"]):
                continue
            out[name] = self.eval(res["Properties"]["PolicyDocument"]["Statement"])
        return out

    def statements(self) -> list[dict]:
        """Every statement of the user's policies: IAM evaluates them together (WorkerPolicy, and
        WorkerAdoptionPolicy while AllowAdoption=true)."""
        return [s for st in self.policies().values() for s in st]


# ---- a small IAM evaluator -------------------------------------------------------------------------
def _listify(x):
    return x if isinstance(x, list) else [x]


def _glob(pattern: str, value: str, case: bool) -> bool:
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, value, 0 if case else re.IGNORECASE) is not None


def _condition_ok(condition: dict, ctx: dict) -> bool:
    keys = {k.lower(): v for k, v in ctx.items()}
    for op, block in condition.items():
        qualifier, _, base = op.rpartition(":")
        for key, wanted in block.items():
            wanted = [str(w) for w in _listify(wanted)]
            have = keys.get(key.lower())
            if base == "Null":
                if (have is None) != (wanted == ["true"]):
                    return False
                continue
            match = {"StringEquals": lambda h: h in wanted,
                     "StringNotEquals": lambda h: h not in wanted,
                     "StringLike": lambda h: any(_glob(w, h, True) for w in wanted)}[base]
            if qualifier == "ForAllValues":
                ok = have is None or all(match(h) for h in _listify(have))
            elif qualifier == "ForAnyValue":
                ok = have is not None and any(match(h) for h in _listify(have))
            elif have is None:
                ok = base == "StringNotEquals"
            else:
                ok = match(have)
            if not ok:
                return False
    return True


def decide(statements, action: str, resource: str, ctx: dict) -> str:
    allowed = False
    for s in statements:
        if not any(_glob(a, action, False) for a in _listify(s["Action"])):
            continue
        if not any(_glob(r, resource, True) for r in _listify(s["Resource"])):
            continue
        if not _condition_ok(s.get("Condition", {}), ctx):
            continue
        if s["Effect"] == "Deny":
            return "explicitDeny"
        allowed = True
    return "allowed" if allowed else "implicitDeny"


def request(statements, action: str, resources: dict[str, dict], request_tags: dict | None = None) -> str:
    """`resources`: every ARN the request is authorized against -> that resource's tags. The result
    is the worst per-resource decision, as for the real request."""
    base = {}
    if request_tags is not None:
        base = {f"aws:RequestTag/{k}": v for k, v in request_tags.items()}
        base["aws:TagKeys"] = list(request_tags)
    decisions = []
    for arn, tags in resources.items():
        ctx = dict(base, **{f"aws:ResourceTag/{k}": v for k, v in tags.items()})
        decisions.append(decide(statements, action, arn, ctx))
    for d in ("explicitDeny", "implicitDeny"):
        if d in decisions:
            return d
    return "allowed"


def policy(template, **overrides) -> list[dict]:
    return Stack(template, dict(CONNECT_PARAMS, **overrides)).statements()


# ---- structure of the template ----------------------------------------------------------------------
def test_security_profile_allow_list_has_no_default_and_no_wildcard(template):
    spec = template["Parameters"]["AllowedSecurityProfileArns"]
    assert "Default" not in spec
    pattern = spec["AllowedPattern"]
    assert re.fullmatch(pattern, SP_AGENT)
    for bad in ("*", f"{I_ARN}/security-profile/*", f"{I_ARN}/*", RP_BASIC, "arn:aws:connect:*"):
        assert not re.fullmatch(pattern, bad), bad
    assert "HasSecurityProfileList" not in template["Conditions"]
    assert "security-profile/*" not in TEMPLATE.read_text()


def test_stack_refuses_connect_without_security_profile_allow_list(template):
    params = {k: v for k, v in CONNECT_PARAMS.items() if k != "AllowedSecurityProfileArns"}
    with pytest.raises(MissingParameter):
        Stack(template, params)
    for empty in ("", f"{SP_AGENT},", f",{SP_AGENT}"):
        assert "ConnectNeedsSecurityProfileAllowList" in Stack(
            template, dict(params, AllowedSecurityProfileArns=empty)).rules_failing(), empty
    assert Stack(template, CONNECT_PARAMS).rules_failing() == []
    # Without Connect an explicitly empty list is accepted, and grants nothing in Connect.
    no_connect = Stack(template, {"OriginationIdentityArns": CONNECT_PARAMS["OriginationIdentityArns"],
                                  "AllowedSecurityProfileArns": ""})
    assert no_connect.rules_failing() == []
    assert not [s for s in no_connect.statements()
                if s["Effect"] == "Allow" and any(a.startswith("connect:") for a in _listify(s["Action"]))]


def _statements_of_every_branch(node) -> list[dict]:
    """Every statement in `node` (raw template), on both sides of each Fn::If."""
    out = []

    def walk(n):
        if isinstance(n, dict):
            if "Effect" in n:
                out.append(n)
            for v in n.values():
                walk(v)
        elif isinstance(n, list):
            for v in n:
                walk(v)
    walk(node)
    return out


def _all_statements_of_every_branch(template):
    """Every statement of WorkerPolicy in the raw template, on both sides of each Fn::If."""
    return _statements_of_every_branch(
        template["Resources"]["WorkerPolicy"]["Properties"]["PolicyDocument"]["Statement"])


def _tagging(statements, effect: str, action: str) -> list[dict]:
    return [s for s in statements
            if s["Effect"] == effect and any(_glob(a, action, False) for a in _listify(s["Action"]))]


def test_no_allow_of_untag_resource_and_tag_resource_only_for_adoption(template):
    """No Allow of UntagResource on either side of any Fn::If, in any policy; the only Allow of
    TagResource is the adoption statement, in WorkerAdoptionPolicy, which exists only when
    CanAdopt (AllowAdoption=true, with Connect) holds and is attached to the Worker's user."""
    policies = {n: r for n, r in template["Resources"].items() if r["Type"] == "AWS::IAM::ManagedPolicy"}
    assert sorted(policies) == ["WorkerAdoptionPolicy", "WorkerPolicy"]
    every = _statements_of_every_branch([r["Properties"]["PolicyDocument"] for r in policies.values()])
    assert _tagging(every, "Allow", "connect:UntagResource") == []
    (allow,) = _tagging(every, "Allow", "connect:TagResource")
    assert allow["Sid"] == "ConnectAdoptUntaggedUsers"
    assert not _tagging(_all_statements_of_every_branch(template), "Allow", "connect:TagResource")
    adoption = policies["WorkerAdoptionPolicy"]
    assert adoption["Condition"] == "CanAdopt" and adoption["Properties"]["Users"] == [{"Ref": "WorkerUser"}]
    assert template["Conditions"]["CanAdopt"] == {
        "Fn::And": [{"Condition": "HasConnect"}, {"Fn::Equals": [{"Ref": "AllowAdoption"}, "true"]}]}
    assert "WorkerAdoptionPolicy" not in Stack(template, CONNECT_PARAMS).policies()


def test_tagging_and_untagging_denied_unconditionally_without_adoption(template):
    """AllowAdoption=false (the default), and any stack without Connect: the one Deny of both
    actions on every resource, without a condition, and no Allow of either."""
    no_connect = {"OriginationIdentityArns": CONNECT_PARAMS["OriginationIdentityArns"],
                  "AllowedSecurityProfileArns": ""}
    stacks = (policy(template), policy(template, AllowAdoption="false"),
              Stack(template, no_connect).statements(),
              Stack(template, dict(no_connect, AllowAdoption="true")).statements())
    for st in stacks:
        (deny,) = _tagging(st, "Deny", "connect:TagResource")
        assert deny["Sid"] == "DenyTaggingAndUntagging"
        assert set(_listify(deny["Action"])) == {"connect:TagResource", "connect:UntagResource"}
        assert deny["Resource"] == "*" and "Condition" not in deny
        assert _tagging(st, "Deny", "connect:UntagResource") == [deny]
        assert _tagging(st, "Allow", "connect:TagResource") == _tagging(st, "Allow", "connect:UntagResource") == []
    assert policy(template) == policy(template, AllowAdoption="false")
    # With adoption, UntagResource keeps its Deny on every resource, without a condition.
    st = policy(template, AllowAdoption="true")
    (untag,) = _tagging(st, "Deny", "connect:UntagResource")
    assert _listify(untag["Action"]) == ["connect:UntagResource"]
    assert untag["Resource"] == "*" and "Condition" not in untag


def test_list_users_allowed_on_the_instance(template):
    st = policy(template)
    (s,) = [s for s in st if "connect:ListUsers" in _listify(s["Action"])]
    assert s["Effect"] == "Allow" and _listify(s["Resource"]) == [I_ARN] and "Condition" not in s


def test_every_user_write_is_conditioned_on_the_managed_tag(template):
    st = policy(template)
    user_arns = f"{I_ARN}/agent/*"
    allows = [s for s in st if s["Effect"] == "Allow" and set(USER_WRITES) & set(_listify(s["Action"]))]
    assert allows
    for s in allows:
        if user_arns in _listify(s["Resource"]):
            assert s["Condition"]["StringEquals"]["aws:ResourceTag/managedBy"] == "okta-edge-hooks", s["Sid"]
        else:  # the profile side: ARNs of the allow-lists only
            assert not any("/agent/" in r for r in _listify(s["Resource"])), s["Sid"]
    (deny,) = [s for s in st if s.get("Sid") == "DenyChangesToUnmanagedUsers"]
    assert set(_listify(deny["Action"])) == set(USER_WRITES)
    assert deny["Condition"] == {"StringNotEquals": {"aws:ResourceTag/managedBy": "okta-edge-hooks"}}


def test_create_user_requires_the_ownership_tags(template):
    creates = [s for s in policy(template, AllowedRoutingProfileArns=RP_BASIC)
               if s["Effect"] == "Allow" and "connect:CreateUser" in _listify(s["Action"])]
    (user_side,) = [s for s in creates if f"{I_ARN}/agent/*" in _listify(s["Resource"])]
    c = user_side["Condition"]
    assert c["StringEquals"]["aws:RequestTag/managedBy"] == "okta-edge-hooks"
    assert c["Null"]["aws:RequestTag/oktaUserId"] == "false"
    assert sorted(c["ForAllValues:StringEquals"]["aws:TagKeys"]) == ["managedBy", "oktaUserId"]
    # The other CreateUser statements name only the listed profiles: every CreateUser needs the
    # user side, so none can be used without the tags.
    profiles = {r for s in creates if s is not user_side for r in _listify(s["Resource"])}
    assert profiles == {SP_AGENT, SP_SUPERVISOR, RP_BASIC}


def test_policy_fits_the_managed_policy_size_limit(template):
    """6,144 characters without whitespace (IAM quota for managed policies), with ten security and
    ten routing profiles (Connect's limit of security profiles per user is ten)."""
    import json
    sps = ",".join(f"{I_ARN}/security-profile/aaaaaaaa-0000-4000-8000-0000000000{i:02d}" for i in range(10))
    rps = ",".join(f"{I_ARN}/routing-profile/bbbbbbbb-0000-4000-8000-0000000000{i:02d}" for i in range(10))
    st = policy(template, AllowedSecurityProfileArns=sps, AllowedRoutingProfileArns=rps,
                ConfigurationSetArn=f"arn:aws:sms-voice:{REGION}:{ACCOUNT}:configuration-set/okta-otp",
                ProtectConfigurationArn=f"arn:aws:sms-voice:{REGION}:{ACCOUNT}:protect-configuration/"
                                        "protect-0123456789abcdef0123456789abcdef",
                TemplateTableArn=f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/okta-edge-hooks-templates")
    size = len(json.dumps({"Version": "2012-10-17", "Statement": st}, separators=(",", ":")))
    assert size <= 6144, size


# ---- the requests -----------------------------------------------------------------------------------
def create(st, sps=(SP_AGENT,), rp=RP_BASIC, tags=WORKER_TAGS, extra=None):
    resources = {NEW_USER: {}, rp: {}, **{sp: {} for sp in sps}, **(extra or {})}
    return request(st, "connect:CreateUser", resources, tags)


def test_worker_calls_are_allowed(template):
    st = policy(template)
    assert request(st, "connect:ListUsers", {I_ARN: {}}) == "allowed"
    assert request(st, "connect:SearchUsers", {I_ARN: {}}) == "allowed"
    assert request(st, "connect:DescribeUser", {ADMIN_USER: {}}) == "allowed"
    assert create(st, sps=(SP_AGENT, SP_SUPERVISOR)) == "allowed"
    assert request(st, "connect:UpdateUserSecurityProfiles", {NEW_USER: MANAGED, SP_SUPERVISOR: {}}) == "allowed"
    assert request(st, "connect:UpdateUserRoutingProfile", {NEW_USER: MANAGED, RP_BASIC: {}}) == "allowed"
    assert request(st, "connect:UpdateUserIdentityInfo", {NEW_USER: MANAGED}) == "allowed"
    assert request(st, "connect:DeleteUser", {NEW_USER: MANAGED}) == "allowed"


def test_leaked_key_cannot_adopt_a_hand_made_admin(template):
    st = policy(template)
    # The attack of the review: tag the administrator as managed, then change or delete it.
    for tags in ({}, {"team": "ops"}):
        assert request(st, "connect:TagResource", {ADMIN_USER: tags}, {"managedBy": "okta-edge-hooks"}) == "explicitDeny"
        assert request(st, "connect:TagResource", {ADMIN_USER: tags}, WORKER_TAGS) == "explicitDeny"
        for action in USER_WRITES:
            extra = {SP_AGENT: {}} if action.endswith("SecurityProfiles") else (
                {RP_BASIC: {}} if action.endswith("RoutingProfile") else {})
            assert request(st, action, {ADMIN_USER: tags, **extra}) == "explicitDeny", action
    # Nor re-point or strip the tags of a managed user.
    assert request(st, "connect:TagResource", {NEW_USER: MANAGED}, {"oktaUserId": "00uOTHER"}) == "explicitDeny"
    assert request(st, "connect:UntagResource", {NEW_USER: MANAGED}, None) == "explicitDeny"
    assert request(st, "connect:UntagResource", {I_ARN: {}}, None) == "explicitDeny"


def test_leaked_key_cannot_hand_out_unlisted_profiles(template):
    st = policy(template, AllowedRoutingProfileArns=RP_BASIC)
    assert create(st, sps=(SP_ADMIN,)) == "implicitDeny"
    assert create(st, sps=(SP_AGENT, SP_ADMIN)) == "implicitDeny"
    assert create(st, rp=RP_OTHER) == "implicitDeny"
    assert request(st, "connect:UpdateUserSecurityProfiles", {NEW_USER: MANAGED, SP_ADMIN: {}}) == "implicitDeny"
    assert request(st, "connect:UpdateUserRoutingProfile", {NEW_USER: MANAGED, RP_OTHER: {}}) == "implicitDeny"
    # An empty routing allow-list still allows every routing profile (compatible), never a security profile.
    st = policy(template)
    assert create(st, rp=RP_OTHER) == "allowed"
    assert create(st, sps=(SP_ADMIN,)) == "implicitDeny"


def test_create_user_only_with_exactly_the_ownership_tags(template):
    st = policy(template)
    assert create(st, tags=None) == "implicitDeny"
    assert create(st, tags={"oktaUserId": "00u1"}) == "implicitDeny"
    assert create(st, tags={"managedBy": "okta-edge-hooks"}) == "implicitDeny"
    assert create(st, tags={"managedBy": "someone-else", "oktaUserId": "00u1"}) == "implicitDeny"
    assert create(st, tags=dict(WORKER_TAGS, team="ops")) == "implicitDeny"
    # Not with a hierarchy group (optional resource of CreateUser), not in another instance.
    assert create(st, extra={f"{I_ARN}/agent-group/dddddddd-0000-4000-8000-000000000001": {}}) == "implicitDeny"
    other = NEW_USER.replace(INSTANCE, OTHER_INSTANCE)
    assert request(st, "connect:CreateUser", {other: {}, SP_AGENT: {}, RP_BASIC: {}}, WORKER_TAGS) == "implicitDeny"
    assert request(st, "connect:ListUsers", {I_ARN.replace(INSTANCE, OTHER_INSTANCE): {}}) == "implicitDeny"
    assert request(st, "connect:DeleteUser", {other: MANAGED}) == "implicitDeny"


def test_other_user_writes_are_not_granted(template):
    st = policy(template)
    for action in ("connect:UpdateUserPhoneConfig", "connect:UpdateUserHierarchy", "connect:CreateSecurityProfile",
                   "connect:UpdateSecurityProfile", "connect:DescribeInstance"):
        assert request(st, action, {NEW_USER: MANAGED, I_ARN: {}}) == "implicitDeny", action


# ---- adoption (AllowAdoption=true, for CONNECT_ADOPT_EXISTING=true) ---------------------------------
def adopt(st, user_tags=None, tags=WORKER_TAGS, arn=ADMIN_USER):
    """The Worker's adoption call: TagResource on an existing user (tags `user_tags`, none by default)."""
    return request(st, "connect:TagResource", {arn: user_tags or {}}, tags)


def test_adoption_parameter_is_off_by_default_and_needs_connect(template):
    spec = template["Parameters"]["AllowAdoption"]
    assert spec["Type"] == "String" and spec["Default"] == "false"
    assert sorted(spec["AllowedValues"]) == ["false", "true"]
    assert Stack(template, dict(CONNECT_PARAMS, AllowAdoption="true")).rules_failing() == []
    no_connect = Stack(template, {"OriginationIdentityArns": CONNECT_PARAMS["OriginationIdentityArns"],
                                  "AllowedSecurityProfileArns": "", "AllowAdoption": "true"})
    assert no_connect.rules_failing() == ["AdoptionNeedsConnect"]


def test_adoption_tags_an_untagged_user_only_when_switched_on(template):
    """The hole that AllowAdoption reopens, on purpose: any user without a managedBy tag (here the
    hand-made administrator) can be tagged as managed, and is then changed like a managed user."""
    assert adopt(policy(template)) == "explicitDeny"
    assert adopt(policy(template, AllowAdoption="false")) == "explicitDeny"
    st = policy(template, AllowAdoption="true")
    assert adopt(st) == "allowed"
    assert adopt(st, user_tags={"team": "ops"}) == "allowed"          # other tags, but no managedBy
    assert adopt(st, user_tags={"oktaUserId": "00uSTALE"}) == "allowed"
    # Then the Worker's three updates, as on any managed user.
    assert request(st, "connect:UpdateUserSecurityProfiles", {ADMIN_USER: WORKER_TAGS, SP_AGENT: {}}) == "allowed"
    assert request(st, "connect:UpdateUserRoutingProfile", {ADMIN_USER: WORKER_TAGS, RP_BASIC: {}}) == "allowed"
    assert request(st, "connect:UpdateUserIdentityInfo", {ADMIN_USER: WORKER_TAGS}) == "allowed"
    # An instance in another region (ConnectRegion): its users, not those of the stack's region.
    st = policy(template, AllowAdoption="true", ConnectRegion="eu-west-2")
    assert adopt(st, arn=ADMIN_USER.replace(REGION, "eu-west-2")) == "allowed"
    assert adopt(st) == "implicitDeny"


def test_adoption_never_retags_a_managed_user(template):
    st = policy(template, AllowAdoption="true")
    assert adopt(st) == "allowed"
    for user_tags in (MANAGED, {"managedBy": "okta-edge-hooks"}, {"managedBy": "someone-else"},
                      {"managedBy": ""}, dict(MANAGED, team="ops")):
        assert adopt(st, user_tags=user_tags) == "explicitDeny", user_tags
        assert adopt(st, user_tags=user_tags, tags={"oktaUserId": "00uOTHER"}) == "explicitDeny", user_tags
        assert adopt(st, user_tags=user_tags, arn=NEW_USER) == "explicitDeny", user_tags
        # The Allow alone (without the Deny's guard) does not match either.
        allow_only = [s for s in st if s.get("Sid") != "DenyRetaggingManagedUsers"]
        assert adopt(allow_only, user_tags=user_tags) == "implicitDeny", user_tags


def test_adoption_only_with_exactly_the_ownership_tags(template):
    st = policy(template, AllowAdoption="true")
    assert adopt(st) == "allowed"
    for tags in (None, {}, {"managedBy": "okta-edge-hooks"}, {"oktaUserId": "00u1"},
                 {"managedBy": "someone-else", "oktaUserId": "00u1"},
                 {"managedBy": "OKTA-EDGE-HOOKS", "oktaUserId": "00u1"},
                 {"ManagedBy": "okta-edge-hooks", "oktaUserId": "00u1"},
                 dict(WORKER_TAGS, team="ops"), {"team": "ops"}):
        assert adopt(st, tags=tags) == "implicitDeny", tags


def test_adoption_only_on_users_of_the_instance(template):
    st = policy(template, AllowAdoption="true")
    assert adopt(st) == "allowed"
    for arn in (I_ARN, SP_AGENT, SP_ADMIN, RP_BASIC,
                f"{I_ARN}/agent-group/dddddddd-0000-4000-8000-000000000001",
                f"{I_ARN}/queue/eeeeeeee-0000-4000-8000-000000000001",
                ADMIN_USER.replace(INSTANCE, OTHER_INSTANCE),
                ADMIN_USER.replace(ACCOUNT, "444455556666"),
                ADMIN_USER.replace(REGION, "eu-west-2")):
        assert adopt(st, arn=arn) == "implicitDeny", arn


def test_untag_resource_stays_denied_with_adoption(template):
    st = policy(template, AllowAdoption="true")
    assert adopt(st) == "allowed"
    for arn, user_tags in ((ADMIN_USER, {}), (NEW_USER, MANAGED), (NEW_USER, {"team": "ops"}),
                           (I_ARN, {}), (SP_AGENT, {})):
        for keys in (None, {"managedBy": ""}, {"managedBy": "", "oktaUserId": ""}, {"team": ""}):
            assert request(st, "connect:UntagResource", {arn: user_tags}, keys) == "explicitDeny", (arn, keys)


def test_policy_with_adoption_fits_the_managed_policy_size_limit(template):
    """As test_policy_fits_the_managed_policy_size_limit, with adoption on: each managed policy
    (WorkerPolicy, WorkerAdoptionPolicy) on its own, for an instance in a long region name."""
    import json
    region = "ap-southeast-2"
    i_arn = I_ARN.replace(REGION, region)
    sps = ",".join(f"{i_arn}/security-profile/aaaaaaaa-0000-4000-8000-0000000000{i:02d}" for i in range(10))
    rps = ",".join(f"{i_arn}/routing-profile/bbbbbbbb-0000-4000-8000-0000000000{i:02d}" for i in range(10))
    stack = Stack(template, dict(
        CONNECT_PARAMS, AllowAdoption="true", ConnectRegion=region,
        AllowedSecurityProfileArns=sps, AllowedRoutingProfileArns=rps,
        ConfigurationSetArn=f"arn:aws:sms-voice:{REGION}:{ACCOUNT}:configuration-set/okta-otp",
        ProtectConfigurationArn=f"arn:aws:sms-voice:{REGION}:{ACCOUNT}:protect-configuration/"
                                "protect-0123456789abcdef0123456789abcdef",
        TemplateTableArn=f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/okta-edge-hooks-templates",
        TemplateTableKmsKeyArn=f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0123abcd-0000-4000-8000-000000000001"))
    policies = stack.policies()
    assert sorted(s["Sid"] for s in policies["WorkerAdoptionPolicy"]) == [
        "ConnectAdoptUntaggedUsers", "DenyRetaggingManagedUsers"]
    for name, st in policies.items():
        size = len(json.dumps({"Version": "2012-10-17", "Statement": st}, separators=(",", ":")))
        assert size <= 6144, (name, size)
