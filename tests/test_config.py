"""The config schema and loader: a valid file decodes; every kind of mistake is one problem
line naming the YAML path and line, and all cross-field problems are reported together."""

from __future__ import annotations

import textwrap
from pathlib import Path

import msgspec
import pytest

from actoros.config import (
    BUILTIN_TOOLS,
    AgentConfig,
    Config,
    ConfigError,
    InferenceConfig,
    Problem,
    load_config,
    load_workload_file,
    parse_config,
)

pytestmark = pytest.mark.timeout(10)

REPO = Path(__file__).resolve().parent.parent

FULL = """\
system:
  name: shop
  log_level: debug
  log_format: json
  state_dir: state
inference:
  engine: fake
  model: tiny
  engine_args: {max_model_len: 512}
  max_in_flight: 8
  max_waiting: 100
services:
  scheduler: {workers: 2, policy: priority, db: jobs.sqlite}
  threads: {context_budget: 400, keep_recent: 2}
  tools:
    user: {lookup: mytools.orders:lookup}
agents:
  - name: router
    kind: rule
    permissions: {agents: [helper], submit: true}
    rules:
      - match: {kind: greeting}
        reply: hi
      - contains: {text: order}
        forward: helper
      - contains: {text: time}
        tool: clock
      - submit: {kind: report, payload: {x: 1}, priority: 2}
    tools: [clock]
  - name: helper
    kind: llm
    system_prompt: You help.
    tools: [calculator, lookup, "other.mod:fn"]
    permissions: {topics: [news]}
    restart: transient
    max_steps: 3
groups:
  - name: all
    strategy: rest_for_one
    max_restarts: 2
    within: 1.5
    backoff: {min: 0.1, max: 2, jitter: 0.2}
    children: [router, helper]
topics:
  - name: news
    subscribers: [helper]
workload:
  agent: router
  tasks:
    - {input: hello}
    - {input: {text: order 7}, agent: helper, id: t2, priority: 1}
"""


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems_of(tmp_path: Path, text: str) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    prefix = f"{path}:"
    lines = caught.value.lines()
    assert all(line.startswith(prefix) for line in lines), lines
    return [line.removeprefix(prefix) for line in lines]


# -- valid configs ---------------------------------------------------------------------------


def importable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Make ``modules`` (dotted names) real, empty modules on ``sys.path``."""
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    for module in modules:
        folder = tmp_path / "lib"
        for package in module.split(".")[:-1]:
            folder = folder / package
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "__init__.py").touch()
        (folder / f"{module.rpartition('.')[2]}.py").touch()


def test_a_full_config_decodes_into_typed_sections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    importable(tmp_path, monkeypatch, "mytools.orders", "other.mod")
    config = load_config(write(tmp_path, FULL))
    assert config.system.name == "shop"
    assert config.system.state_dir == str(tmp_path / "state")
    assert config.inference == InferenceConfig(
        engine="fake",
        model="tiny",
        engine_args={"max_model_len": 512},
        max_in_flight=8,
        max_waiting=100,
    )
    assert config.services.scheduler.db == str(tmp_path / "jobs.sqlite")
    assert config.services.threads.db == str(tmp_path / "state" / "threads.sqlite")
    assert config.services.tools.user == {"lookup": "mytools.orders:lookup"}
    router, helper = config.agents
    assert router.rules[1].forward == "helper"
    assert router.rules[3].submit is not None and router.rules[3].submit.payload == {"x": 1}
    assert helper.tools == ("calculator", "lookup", "other.mod:fn")
    assert helper.restart == "transient"
    assert config.groups[0].children == ("router", "helper")
    assert config.groups[0].backoff.max == 2.0
    assert config.topics[0].subscribers == ("helper",)
    assert config.workload is not None
    assert config.workload.tasks[1].input == {"text": "order 7"}


def test_an_empty_file_is_a_config_of_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    assert config.agents == () and config.inference is None and config.workload is None
    assert config.services.scheduler.workers == 4
    assert config.services.scheduler.db == str(tmp_path / ".actoros" / "scheduler.sqlite")


def test_config_structs_are_frozen() -> None:
    config = parse_config("system: {name: x}")
    with pytest.raises(AttributeError):
        config.system = config.system  # type: ignore[misc]


def test_every_example_config_validates() -> None:
    examples = sorted((REPO / "configs").glob("*.yaml"))
    assert REPO / "configs" / "fake.yaml" in examples
    for path in examples:
        assert isinstance(load_config(path), Config), path


def test_fake_example_is_the_customer_service_system() -> None:
    config = load_config(REPO / "configs" / "fake.yaml")
    assert config.inference is not None and config.inference.engine == "fake"
    assert {a.name: a.kind for a in config.agents} == {
        "router": "rule",
        "faq": "llm",
        "orders": "llm",
    }
    assert config.workload is not None and len(config.workload.tasks) == 20


# -- decode errors: the first one, with path and line ------------------------------------------


def test_unknown_key_names_the_key_its_line_and_the_known_keys(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path,
        """\
        agents:
          - name: a
            kind: rule
            rules: [{reply: x}]
            colour: red
        """,
    )
    assert len(problems) == 1
    assert problems[0].startswith(
        "5: agents[0].colour: unknown key (known: constrain, kind, mailbox, "
    )


def test_unknown_top_level_section_is_an_error(tmp_path: Path) -> None:
    assert problems_of(tmp_path, "sytem: {name: x}\n") == [
        "1: sytem: unknown key (known: agents, cluster, gateway, groups, inference, services, "
        "system, topics, workload)"
    ]


def test_wrong_type_names_the_expected_type_and_line(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path,
        """\
        services:
          scheduler:
            workers: many
        """,
    )
    assert problems == ["3: services.scheduler.workers: Expected 'int', got 'str'"]


def test_a_value_out_of_range_is_an_error_that_states_the_range(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, "services:\n  scheduler: {workers: 0}\n")
    assert problems == ["2: services.scheduler.workers: 0 is out of range (allowed: 1 to 10000)"]


def test_an_unknown_choice_is_an_error(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, "inference:\n  engine: llama\n")
    assert problems == ["2: inference.engine: Invalid enum value 'llama'"]


def test_a_missing_required_key_names_it(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, "agents:\n  - name: a\n")
    assert problems == ["2: agents[0]: missing required key 'kind'"]


def test_a_bad_agent_name_is_an_error(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, "agents:\n  - {name: 'a b', kind: llm}\n")
    assert len(problems) == 1 and problems[0].startswith("2: agents[0].name: Expected 'str'")


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    assert problems_of(tmp_path, "- a\n- b\n") == ["1: expected a mapping of sections at the top"]


# -- YAML errors -------------------------------------------------------------------------------


def test_yaml_syntax_error_is_one_problem_with_its_line(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, "system:\n  name: x\nagents:\n  - name: [a\n    kind: rule\n")
    assert len(problems) == 1
    line, _, message = problems[0].partition(": ")
    assert line.isdigit() and int(line) >= 4
    assert message.startswith("invalid YAML: ")


def test_duplicate_yaml_key_is_an_error(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, "system:\n  name: a\n  name: b\n")
    assert problems == ["3: system.name: duplicate key"]


# -- checks across fields: all problems at once --------------------------------------------------


def test_unknown_tool_lists_the_known_tools(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path,
        """\
        inference: {engine: fake}
        agents:
          - {name: a, kind: llm}
          - {name: b, kind: llm}
          - name: c
            kind: llm
            tools:
              - serch
        """,
    )
    assert problems == [
        "8: agents[2].tools[0]: unknown tool 'serch' (known: calculator, clock, kv_get, kv_put)"
    ]


def test_user_tools_are_known_by_name_and_must_look_like_module_function(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    importable(tmp_path, monkeypatch, "pkg.mod", "pkg.other")
    problems = problems_of(
        tmp_path,
        """\
        inference: {engine: fake}
        services:
          tools:
            user: {lookup: "pkg.mod:lookup", broken: "pkg.mod", clock: "x:y"}
        agents:
          - name: a
            kind: llm
            tools: [lookup, "pkg.other:fn", "not a tool:", serch]
        """,
    )
    assert problems == [
        "4: services.tools.user.broken: 'pkg.mod' is not 'module:function'",
        "4: services.tools.user.clock: shadows a built-in tool",
        "4: services.tools.user.clock: user tool 'x:y': no module named 'x' (install it, or run "
        "from its folder)",
        "8: agents[0].tools[2]: user tool 'not a tool:' is not 'module:function'",
        "8: agents[0].tools[3]: unknown tool 'serch' "
        "(known: broken, calculator, clock, kv_get, kv_put, lookup)",
    ]


def test_unknown_agent_in_a_group_and_an_agent_in_two_groups(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path,
        """\
        agents:
          - {name: a, kind: rule, rules: [{reply: x}]}
        groups:
          - name: g1
            children: [a, ghost]
          - name: g2
            children: [a]
          - name: g2
        """,
    )
    assert problems == [
        "5: groups[0].children[1]: unknown agent 'ghost' (known: a)",
        "7: groups[1].children[0]: agent 'a' is already in group 'g1'",
        "8: groups[2].name: duplicate group name 'g2' (also groups[1])",
        "8: groups[2].children: a group needs at least one child",
    ]


def test_duplicate_agent_names(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path,
        """\
        agents:
          - {name: a, kind: rule, rules: [{reply: x}]}
          - {name: b, kind: rule, rules: [{reply: x}]}
          - name: a
            kind: rule
            rules: [{reply: y}]
        """,
    )
    assert problems == ["4: agents[2].name: duplicate agent name 'a' (also agents[0])"]


def test_missing_workload_file_is_relative_to_the_config(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path,
        """\
        agents:
          - {name: a, kind: rule, rules: [{reply: x}]}
        workload:
          agent: a
          file: questions.jsonl
        """,
    )
    assert problems == [f"5: workload.file: no such file: {tmp_path / 'questions.jsonl'}"]


def test_a_workload_file_next_to_the_config_is_found_and_read(tmp_path: Path) -> None:
    (tmp_path / "q.jsonl").write_text('"hello"\n\n{"input": "hi", "id": "x"}\n')
    config = load_config(
        write(
            tmp_path,
            "agents: [{name: a, kind: rule, rules: [{reply: x}]}]\n"
            "workload: {agent: a, file: q.jsonl}\n",
        )
    )
    assert config.workload is not None and config.workload.file == str(tmp_path / "q.jsonl")
    tasks = load_workload_file(config.workload.file)
    assert [(t.input, t.id) for t in tasks] == [("hello", None), ("hi", "x")]


def test_bad_workload_file_lines_are_reported_with_their_line(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('{"input": "ok"}\n{oops\n{"input": 3}\n')
    with pytest.raises(ConfigError) as caught:
        load_workload_file(path)
    lines = caught.value.lines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{path}:2: not valid JSON")
    assert lines[1].startswith(f"{path}:3: input: Expected 'str | object', got 'int'")


def test_a_task_id_given_twice_inline_is_a_problem_naming_both_lines(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path,
        """\
        agents: [{name: a, kind: rule, rules: [{reply: x}]}]
        workload:
          agent: a
          tasks:
            - {id: q1, input: one}
            - {id: q2, input: two}
            - {id: q1, input: three}
            - {input: no id}
            - {input: no id}
        """,
    )
    assert problems == [
        "7: workload.tasks[2].id: duplicate task id 'q1' (also workload.tasks[0], line 5)"
    ]


def test_a_task_id_given_twice_in_a_workload_file_is_a_problem_naming_both_lines(
    tmp_path: Path,
) -> None:
    (tmp_path / "q.jsonl").write_text(
        '{"id": "q1", "input": "one"}\n"no id"\n"no id"\n{"id": "q1", "input": "two"}\n',
        encoding="utf-8",
    )
    problems = problems_of(
        tmp_path,
        """\
        agents: [{name: a, kind: rule, rules: [{reply: x}]}]
        workload: {agent: a, file: q.jsonl}
        """,
    )
    assert problems == [
        f"2: workload.file: {tmp_path / 'q.jsonl'}:4: id: duplicate task id 'q1' (also line 1)"
    ]


def test_rules_refer_to_known_agents_and_permitted_tools(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path,
        """\
        agents:
          - name: r
            kind: rule
            permissions: {agents: [s]}
            rules:
              - forward: nobody
              - forward: t
              - forward: r
              - tool: calculator
              - submit: {kind: k}
              - {reply: x, forward: s}
              - {}
          - {name: s, kind: rule, rules: [{reply: x}]}
          - {name: t, kind: rule, rules: [{reply: x}]}
        """,
    )
    assert problems == [
        "6: agents[0].rules[0].forward: unknown agent 'nobody' (known: r, s, t)",
        "6: agents[0].rules[0].forward: forwarding to 'nobody' is not allowed by "
        "permissions.agents",
        "7: agents[0].rules[1].forward: forwarding to 't' is not allowed by permissions.agents",
        "8: agents[0].rules[2].forward: an agent cannot forward to itself",
        "9: agents[0].rules[3].tool: tool 'calculator' is not in this agent's tools",
        "10: agents[0].rules[4].submit: submitting tasks needs permissions.submit: true",
        "11: agents[0].rules[5]: a rule needs exactly one action of reply, forward, tool, "
        "submit (got reply, forward)",
        "12: agents[0].rules[6]: a rule needs exactly one action of reply, forward, tool, "
        "submit (got none)",
    ]


def test_permissions_name_known_agents_tools_and_topics(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path,
        """\
        inference: {engine: fake}
        topics: [{name: news, subscribers: [a, ghost]}]
        agents:
          - name: a
            kind: llm
            permissions:
              tools: [clock, serch]
              agents: ["*", ghost]
              topics: [news, gossip]
        """,
    )
    assert problems == [
        "7: agents[0].permissions.tools[1]: unknown tool 'serch' "
        "(known: calculator, clock, kv_get, kv_put)",
        "8: agents[0].permissions.agents[1]: unknown agent 'ghost' (known: a)",
        "9: agents[0].permissions.topics[1]: unknown topic 'gossip' (known: news)",
        "2: topics[0].subscribers[1]: unknown agent 'ghost' (known: a)",
    ]


def test_agent_kinds_need_their_own_parts(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path,
        """\
        agents:
          - {name: a, kind: llm}
          - {name: b, kind: rule}
          - {name: c, kind: rule, system_prompt: hi, rules: [{reply: x}]}
          - {name: d, kind: llm, rules: [{reply: x}]}
        """,
    )
    assert problems == [
        "2: agents[0].kind: an llm agent needs an 'inference' section",
        "3: agents[1].rules: a rule agent needs at least one rule",
        "4: agents[2].system_prompt: only llm agents use a system prompt",
        "5: agents[3].rules: only rule agents have rules",
        "5: agents[3].kind: an llm agent needs an 'inference' section",
    ]


def test_tool_choice_required_needs_something_to_call_a_second_step_and_the_grammar(
    tmp_path: Path,
) -> None:
    problems = problems_of(
        tmp_path,
        """\
        inference: {engine: fake}
        agents:
          - {name: a, kind: llm, tool_choice: required}
          - {name: b, kind: llm, tool_choice: required, tools: [clock], max_steps: 1}
          - {name: c, kind: llm, tool_choice: required, tools: [clock], constrain: false}
          - {name: d, kind: llm, tool_choice: required, tools: [clock], optional_arguments: false}
        """,
    )
    assert problems == [
        "3: agents[0].tool_choice: 'required' needs tools (or agents to ask): list some or "
        "use 'auto'",
        "4: agents[1].tool_choice: 'required' needs max_steps >= 2 (a step to call, one to answer)",
        "5: agents[2].tool_choice: 'required' is enforced by the grammar: set constrain: true "
        "or use 'auto'",
    ]


def test_workload_tasks_need_a_known_agent(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path,
        """\
        agents: [{name: a, kind: rule, rules: [{reply: x}]}]
        workload:
          file: q.jsonl
          tasks:
            - {input: hi}
            - {input: hi, agent: b}
        """,
    )
    assert problems == [
        "2: workload: give either 'tasks' or 'file', not both",
        "5: workload.tasks[0]: no agent: set the task's 'agent' or 'workload.agent'",
        "6: workload.tasks[1].agent: unknown agent 'b' (known: a)",
        f"3: workload.file: no such file: {tmp_path / 'q.jsonl'}",
    ]


def test_long_agent_lists_suggest_close_names_only(tmp_path: Path) -> None:
    agents = "".join(
        f"  - {{name: worker{i}, kind: rule, rules: [{{reply: x}}]}}\n" for i in range(20)
    )
    problems = problems_of(
        tmp_path, f"agents:\n{agents}groups: [{{name: g, children: [wrker1]}}]\n"
    )
    assert len(problems) == 1
    assert problems[0].startswith(
        "22: groups[0].children[0]: unknown agent 'wrker1' (did you mean: worker1"
    )


def test_a_group_may_not_take_the_kernels_name(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path,
        """\
        agents: [{name: a, kind: rule, rules: [{reply: x}]}]
        groups: [{name: kernel, children: [a]}]
        """,
    )
    assert problems == ["2: groups[0].name: the name 'kernel' is the kernel's (/kernel)"]


def test_agents_in_no_group_need_the_name_agents_free(tmp_path: Path) -> None:
    text = """\
        agents:
          - {name: a, kind: rule, rules: [{reply: x}]}
          - {name: b, kind: rule, rules: [{reply: x}]}
        groups: [{name: agents, children: [a]}]
        """
    assert problems_of(tmp_path, text) == [
        "4: groups[0].name: agents in no group (b) run in a group named 'agents': add them to "
        "a group, or rename this one"
    ]
    grouped = text.replace("children: [a]", "children: [a, b]")
    assert len(load_config(write(tmp_path, grouped)).groups) == 1


def test_a_user_tool_module_that_cannot_be_found_is_an_error(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path,
        """\
        services: {tools: {user: {lookup: "no_such_shop.orders:lookup"}}}
        agents:
          - {name: a, kind: rule, tools: ["nowhere_xyz:fn"], rules: [{reply: x}]}
        """,
    )
    assert problems == [
        "1: services.tools.user.lookup: user tool 'no_such_shop.orders:lookup': no module named "
        "'no_such_shop' (install it, or run from its folder)",
        "3: agents[0].tools[0]: user tool 'nowhere_xyz:fn': no module named 'nowhere_xyz' "
        "(install it, or run from its folder)",
    ]


def test_an_agents_module_function_tool_may_not_take_another_tools_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    importable(tmp_path, monkeypatch, "shop.a", "shop.b")
    problems = problems_of(
        tmp_path,
        """\
        services: {tools: {user: {lookup: "shop.a:lookup"}}}
        agents:
          - {name: a, kind: rule, tools: ["shop.b:lookup"], rules: [{reply: x}]}
        """,
    )
    assert problems == [
        "3: agents[0].tools[0]: the tool name 'lookup' is taken by 'shop.a:lookup': declare this "
        "one in services.tools.user under another name"
    ]


def test_the_state_dir_must_be_a_folder(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("")
    assert problems_of(tmp_path, "system: {state_dir: plain}\n") == [
        f"1: system.state_dir: {tmp_path / 'plain'} is a file: name a folder"
    ]
    assert problems_of(tmp_path, "system: {state_dir: plain/state}\n") == [
        f"1: system.state_dir: {tmp_path / 'plain' / 'state'} is under {tmp_path / 'plain'}, "
        "a file: name a folder"
    ]
    assert load_config(write(tmp_path, "system: {state_dir: new/state}\n")).system.state_dir


def test_a_database_file_may_not_be_a_folder(tmp_path: Path) -> None:
    (tmp_path / "jobs").mkdir()
    assert problems_of(tmp_path, "services: {scheduler: {db: jobs}}\n") == [
        f"1: services.scheduler.db: {tmp_path / 'jobs'} is a folder, not a database file"
    ]


def test_a_path_that_cannot_be_resolved_is_one_line(tmp_path: Path) -> None:
    assert problems_of(tmp_path, 'system: {state_dir: "a\\0b"}\n') == [
        "1: system.state_dir: bad path: embedded null byte"
    ]


def test_backoff_max_may_not_be_below_min(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path,
        """\
        agents: [{name: a, kind: rule, rules: [{reply: x}]}]
        groups: [{name: g, children: [a], backoff: {min: 2, max: 1}}]
        """,
    )
    assert problems == [
        "2: groups[0].backoff.max: below backoff.min (2): raise it, or 0 for no cap"
    ]


# -- the types -------------------------------------------------------------------------------


def test_problem_renders_without_line_or_path() -> None:
    assert Problem("", None, "bad").render("c.yaml") == "c.yaml: bad"
    assert Problem("a[0]", 3, "bad").render("c.yaml") == "c.yaml:3: a[0]: bad"


def test_a_problem_is_one_line_whatever_it_quotes() -> None:
    problem = Problem("system.name", 2, "Invalid enum value 'a\nb\u2028c\x1b[31m'")
    assert problem.render("new\nline.yaml") == (
        "new\\nline.yaml:2: system.name: Invalid enum value 'a\\nb\\u2028c\\x1b[31m'"
    )


def test_parse_config_from_a_string_resolves_paths_against_base_dir(tmp_path: Path) -> None:
    config = parse_config("system: {state_dir: s}", base_dir=tmp_path)
    assert config.system.state_dir == str(tmp_path / "s")


def test_builtin_tools_and_agent_defaults() -> None:
    assert BUILTIN_TOOLS == ("calculator", "clock", "kv_get", "kv_put")
    agent = msgspec.convert({"name": "a", "kind": "llm"}, AgentConfig)
    assert (agent.restart, agent.max_steps, agent.permissions.tools) == ("permanent", 4, None)


def test_decode_errors_in_different_sections_and_agents_are_all_reported(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path,
        """\
        system: {name: shop, colour: red}
        agents:
          - {name: a, kind: rule, rules: [{reply: x}]}
          - {name: b, kind: robot}
          - {name: c, kind: llm, max_steps: lots}
        topix: []
        """,
    )
    assert problems == [
        "1: system.colour: unknown key (known: log_format, log_level, name, state_dir)",
        "4: agents[1].kind: Invalid enum value 'robot'",
        "5: agents[2].max_steps: Expected 'int', got 'str'",
        "6: topix: unknown key (known: agents, cluster, gateway, groups, inference, services, "
        "system, topics, workload)",
    ]


def test_unknown_key_deep_inside_a_list_lists_that_sections_keys(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path,
        """\
        agents:
          - name: a
            kind: rule
            rules:
              - reply: x
                when: always
        """,
    )
    assert problems == [
        "6: agents[0].rules[0].when: unknown key "
        "(known: args, contains, forward, match, reply, submit, tool)"
    ]
