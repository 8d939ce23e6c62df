"""The traceback text parser on real captures (tests/fixtures/tracebacks/raw) and on the formats this
machine cannot produce (.NET Core, Kotlin, Ruby 3.4, Rails, Laravel, AWS Lambda), written down from
their runtimes' documented output."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from sentry_autofix.errors import InputError
from sentry_autofix.models import ErrorEvent
from sentry_autofix.sources.traceback_text import (
    MAX_FRAMES,
    clean_lines,
    decode,
    fingerprint,
    parse_all,
    parse_traceback,
)

RAW = Path(__file__).resolve().parents[1] / "fixtures" / "tracebacks" / "raw"


def load(name: str) -> ErrorEvent:
    return parse_traceback((RAW / name).read_text())


def chain(event: ErrorEvent) -> list[str | None]:
    return [e.type for e in event.exceptions]


def crash(event: ErrorEvent) -> tuple[str | None, int | None, str | None]:
    exc = event.exceptions[-1]
    frame = exc.frames[-1]
    return frame.abs_path or frame.filename, frame.lineno, frame.function


# --- real captures -------------------------------------------------------------------------------


def test_parse_python__direct_cause_chain_root_first_with_source_lines() -> None:
    """`raise … from exc`: the KeyError (root cause) comes first, the surfaced PricingError last,
    and Python's printed source lines become context lines (mapping can verify them)."""
    event = load("python_chained.txt")
    assert chain(event) == ["KeyError", "shop.views.PricingError"]
    root = event.exceptions[0].frames[-1]
    assert (root.abs_path, root.lineno, root.function) == ("/srv/app/releases/3/python/shop/pricing.py", 8, "convert")
    assert root.context_line == "return amount * RATES[currency]"
    assert event.headline == "shop.views.PricingError: cannot price in GBP"


def test_parse_python__during_handling_and_carets() -> None:
    """`During handling…` chains too; the `~~~^^^` caret lines of 3.11 are not code lines."""
    event = load("python_handling.txt")
    assert chain(event) == ["ZeroDivisionError", "KeyError"]
    assert all("^" not in (f.context_line or "") for e in event.exceptions for f in e.frames)


def test_parse_python__exception_group_sub_exceptions_before_the_group() -> None:
    """The sub-exceptions are the errors: they come before the group, which surfaced last."""
    event = load("python_group.txt")
    assert chain(event) == ["AttributeError", "ValueError", "ExceptionGroup"]
    assert crash(event)[2] == "run_all"
    assert event.exceptions[0].frames[-1].function == "sync_stock"
    assert event.exceptions[-1].mechanism is not None


@pytest.mark.parametrize("name", ["python_syntax.txt", "python_syntax_startup.txt"])
def test_parse_python__syntax_error_points_at_the_broken_file(name: str) -> None:
    """A SyntaxError's last frame has no function: it is the file that does not parse."""
    event = load(name)
    assert event.exceptions[-1].type == "SyntaxError"
    assert crash(event) == ("/srv/app/releases/3/python/shop/broken.py", 8, None)


def test_parse_python__logging_exception_first_line_is_not_the_error() -> None:
    """`logging.exception` puts its own message first; the error is the traceback's last line."""
    event = load("demo_logging.txt")
    assert event.headline == "ZeroDivisionError: division by zero"
    assert [f.filename for f in event.exceptions[0].frames] == ["<string>", "views.py", "cart.py"]
    assert event.exceptions[0].frames[0].in_app is False


@pytest.mark.parametrize(
    ("name", "cell"),
    [("python_ipython8_cell.txt", "Cell In[1]"), ("python_ipython7_cell.txt", "<ipython-input-1-844ddb852201>")],
)
def test_parse_ipython__cell_and_library_frames_line_from_the_header_or_the_arrow(name: str, cell: str) -> None:
    """IPython 8 (`File /x.py:12, in f(arg)`) and 7 (`/x.py in f(arg)` + `---> 12`): the cell is not
    in the app, the crash frame has its file, line, function and the arrowed source line."""
    event = load(name)
    assert chain(event) == ["ZeroDivisionError"]
    assert event.headline == "ZeroDivisionError: division by zero"
    frames = event.exceptions[0].frames
    assert (frames[0].filename, frames[0].lineno, frames[0].in_app) == (cell, 1, False)
    assert crash(event) == ("/srv/app/releases/3/python/shop/cart.py", 8, "average_item_price")
    assert frames[-1].context_line == "return round(total / units, 2)"
    assert [f.lineno for f in frames] == [1, 12, 8]


@pytest.mark.parametrize("name", ["python_ipython8_color_chained.txt", "python_ipython7_color_chained.txt"])
def test_parse_ipython__colours_and_direct_cause_chain(name: str) -> None:
    """Colour codes and IPython 7's terminal-title escape are noise; `raise … from` chains root first."""
    event = load(name)
    assert chain(event) == ["KeyError", "PricingError"]
    assert event.exceptions[0].frames[-1].abs_path.endswith("/releases/3/python/shop/pricing.py")  # type: ignore[union-attr]
    assert crash(event)[1:] == (19, "checkout")
    assert event.exceptions[-1].value == "cannot price in GBP"


def test_parse_ipython__home_paths_elided_source_and_during_handling() -> None:
    """IPython 8 prints paths under $HOME as `~/…` and module-level frames without `, in`."""
    event = load("python_ipython8_handling.txt")
    assert chain(event) == ["ZeroDivisionError", "KeyError"]
    outer = event.exceptions[-1].frames
    assert [(f.abs_path, f.lineno, f.function) for f in outer] == [
        ("~/releases/3/python/app.py", 16, None),
        ("~/releases/3/python/app.py", 10, "<lambda>"),
        ("~/releases/3/python/shop/views.py", 27, "report"),
    ]


def test_parse_ipython__generated_code_frames_without_source() -> None:
    """IPython 7 names generated code `<magic-timeit>` (or `<decorator-gen-9>`, numpy's
    `<__array_function__ internals>`) and prints no source under it: still a frame, not an end."""
    frames = load("python_ipython7_magic.txt").exceptions[-1].frames
    generated = [f for f in frames if f.filename == "<magic-timeit>"]
    assert [(f.function, f.lineno, f.in_app) for f in generated] == [("inner", None, False)]
    assert frames[-1].filename == "cart.py"
    assert frames[-1].lineno == 8


@pytest.mark.parametrize("name", ["python_ipython8_handling.txt", "python_ipython7_cell.txt"])
def test_parse_ipython__quoted_without_rule_and_header(name: str) -> None:
    """People paste from the first frame: a frame header followed by numbered source still parses."""
    lines = (RAW / name).read_text().split("\n")
    start = next(i for i, line in enumerate(lines) if "Traceback (most recent call last)" in line) + 1
    event = parse_traceback("Here is what I get:\n\n" + "\n".join(lines[start:]))
    assert crash(event) == crash(load(name))
    assert chain(event)[-1] == chain(load(name))[-1]


def test_parse_python__quoted_without_header_line() -> None:
    """traceback.format_tb() + format_exception_only(), as apps log it and people quote it."""
    event = load("python_no_header.txt")
    assert event.headline == "ZeroDivisionError: division by zero"
    assert crash(event) == ("/srv/app/releases/3/python/shop/cart.py", 8, "average_item_price")


@pytest.mark.parametrize("quote", ["> ", ">"])
def test_parse_python__markdown_quoted_with_or_without_space(quote: str) -> None:
    """A traceback pasted as a block quote (CommonMark `>` with an optional space; e-mail quoting)
    parses like the original, exception line included, with or without its header."""
    raw = (RAW / "python_zero.txt").read_text().splitlines()
    for lines in (raw, raw[1:]):
        event = parse_traceback("Here is the error:\n\n" + "\n".join(quote + line for line in lines))
        assert event.headline == "ZeroDivisionError: division by zero"
        assert crash(event) == crash(load("python_zero.txt"))


def test_parse_python__headerless_frames_need_an_exception_line() -> None:
    """Without the header, frame-like lines that do not end in an exception are not a traceback."""
    text = '  File "/srv/app/x.py", line 2, in f\n    return g()\nsome other log line\n'
    with pytest.raises(InputError, match="no stack trace"):
        parse_traceback(text)


def test_parse_ipython__hostile_long_header_lines_stay_linear() -> None:
    """Near-miss frame headers of maximal length (unclosed argument lists, `.py in` repeated) are
    rejected without backtracking blow-up: 1,000 such lines parse to "no traceback" at once."""
    near = ["File " + "a" * 3990 + ":1, in f(" + "(" * 50, "/" + "b.py in " * 490 + "(", "---> 1 x"]
    with pytest.raises(InputError, match="no stack trace"):
        parse_traceback("\n".join(near * 333))


def test_parse_node__cause_elided_frames_and_banner() -> None:
    """`{ [cause]: … }` is the root cause; the `file:line` banner gives the throw site its source line;
    node:internal frames are not the app's."""
    event = load("node_cause.txt")
    assert chain(event) == ["TypeError", "Error"]
    assert crash(event) == ("/srv/app/releases/3/node/src/orders.js", 9, "checkout")
    assert event.exceptions[-1].frames[-1].context_line == "throw new Error('checkout failed', { cause: err });"
    assert crash(ErrorEvent(exceptions=event.exceptions[:1])) == (
        "/srv/app/releases/3/node/src/cart.js",
        5,
        "lineTotal",
    )
    internal = [f for e in event.exceptions for f in e.frames if (f.abs_path or "").startswith("node:")]
    assert internal and all(f.in_app is False for f in internal)


def test_parse_node__esm_file_urls_and_async_frames() -> None:
    event = load("node_esm_async.txt")
    frames = event.exceptions[0].frames
    assert [f.function for f in frames] == [None, "handle", "reserve"]
    assert frames[-1].abs_path == "file:///srv/app/releases/3/node/src/stock.mjs"
    assert (frames[-1].lineno, frames[-1].colno) == (5, 16)


def test_parse_java__caused_by_and_n_more_rebuilt_from_the_enclosing_trace() -> None:
    """`... 1 more` means the last frame of the enclosing trace: the cause gets Main.main back."""
    event = load("java_cause.txt")
    assert chain(event) == ["java.lang.ArithmeticException", "java.lang.IllegalStateException"]
    root = event.exceptions[0].frames
    assert [(f.module, f.function) for f in root] == [
        ("com.acme.shop.Main", "main"),
        ("com.acme.shop.Cart", "summary"),
        ("com.acme.shop.Pricing", "averagePrice"),
    ]
    assert root[-1].filename == "Pricing.java" and root[-1].lineno == 14


def test_parse_java__suppressed_stays_out_of_the_chain_but_is_named() -> None:
    event = load("java_suppressed.txt")
    assert chain(event) == ["java.lang.NullPointerException"]
    assert "suppressed: java.lang.IllegalStateException: printer offline" in (event.exceptions[0].value or "")
    assert crash(event) == ("Receipt.java", 12, "print")


def test_parse_java__module_prefixed_jdk_frames_are_not_in_app() -> None:
    frames = load("java_parse.txt").exceptions[0].frames
    assert [f.in_app for f in frames] == [None, None, False, False, False]
    assert frames[2].module == "java.lang.Integer"


@pytest.mark.parametrize(
    ("name", "value", "crash_frame"),
    [
        ("go_divide.txt", "runtime error: integer divide by zero", ("/srv/app/releases/3/go/cart/cart.go", 24)),
        ("go_nil_map.txt", "assignment to entry in nil map", ("/srv/app/releases/3/go/cart/cart.go", 30)),
        ("go_trimpath.txt", "runtime error: integer divide by zero", ("github.com/acme/shop/cart/cart.go", 24)),
    ],
)
def test_parse_go__panic_goroutine_frames(name: str, value: str, crash_frame: tuple[str, int]) -> None:
    event = load(name)
    exc = event.exceptions[0]
    assert (exc.type, exc.value) == ("panic", value)
    top = exc.frames[-1]
    assert (top.abs_path, top.lineno) == crash_frame
    assert (top.module, top.function) == (
        "github.com/acme/shop/cart",
        "(*Cart).Average" if "nil" not in name else "(*Cart).Annotate",
    )


def test_parse_ruby__cause_printed_after_the_wrapper_comes_first() -> None:
    event = load("ruby_cause.txt")
    assert chain(event) == ["ZeroDivisionError", "Shop::CheckoutError"]
    assert event.exceptions[0].frames[-2].function == "average_price"
    assert event.exceptions[-1].frames[-1].function == "summary", "`rescue in summary` is summary"


def test_parse_ruby__error_highlight_snippet_between_head_and_from_lines() -> None:
    event = load("ruby_nil.txt")
    assert event.headline == "NoMethodError: undefined method `[]' for nil:NilClass"
    assert [f.function for f in event.exceptions[0].frames] == ["<main>", "customer_name"]


@pytest.mark.parametrize("name", ["php_cause.txt", "php_error_log.txt"])
def test_parse_php__next_chain_and_throw_site_from_the_header(name: str) -> None:
    """`#0 file(line): call()` is where `call` was called; the frame that threw is the header's file:line,
    running the function #0 names."""
    event = load(name)
    assert chain(event) == ["DivisionByZeroError", "RuntimeException"]
    root = event.exceptions[0].frames
    assert [(Path(f.abs_path or "").name, f.lineno, f.function) for f in root] == [
        ("index.php", 9, "{main}"),
        ("Checkout.php", 12, "summary"),
        ("Cart.php", 22, "averagePrice"),
    ]
    assert root[-1].module == "Shop\\Cart"


def test_parse_csharp__mono_inner_exception_and_two_printed_copies() -> None:
    """Mono prints the error twice (`Unhandled Exception:` and `[ERROR] FATAL …`): one event, inner first."""
    event = load("csharp_cause.txt")
    assert chain(event) == ["System.DivideByZeroException", "System.InvalidOperationException"]
    inner = event.exceptions[0].frames
    assert [(f.module, f.function, f.lineno) for f in inner] == [
        ("Shop.Checkout", "Summary", 12),
        ("Shop.Cart", "Average", 20),
    ]
    assert inner[-1].abs_path == "/home/ci/build/shop/src/Shop/Cart.cs"
    assert len(parse_all((RAW / "csharp_cause.txt").read_text())) == 2


# --- formats written down from their runtimes' documentation -----------------------------------


DOTNET_CORE = """Unhandled exception. System.InvalidOperationException: Order 42 has no lines
 ---> System.DivideByZeroException: Attempted to divide by zero.
   at Shop.Pricing.Average(List`1 prices) in /src/Shop/Pricing.cs:line 14
   at Shop.Orders.<Total>d__3.MoveNext() in /src/Shop/Orders.cs:line 22
   --- End of inner exception stack trace ---
   at Shop.Orders.Total(Order order) in /src/Shop/Orders.cs:line 26
--- End of stack trace from previous location ---
   at System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw()
   at Program.<Main>$(String[] args) in /src/Shop/Program.cs:line 3
"""


def test_parse_dotnet_core__inner_exception_line_async_state_machine_and_line_word() -> None:
    event = parse_traceback(DOTNET_CORE)
    assert chain(event) == ["System.DivideByZeroException", "System.InvalidOperationException"]
    inner = event.exceptions[0].frames
    assert [(f.function, f.lineno) for f in inner] == [("Total", 22), ("Average", 14)]
    outer = event.exceptions[1].frames
    assert outer[1].in_app is False and outer[1].abs_path is None
    assert outer[-1].abs_path == "/src/Shop/Orders.cs" and outer[-1].lineno == 26


KOTLIN = """Exception in thread "main" java.lang.IllegalStateException: cart is empty
\tat com.acme.shop.CartKt.average(Cart.kt:7)
\tat com.acme.shop.MainKt.main(Main.kt:4)
\tat com.acme.shop.MainKt.main(Main.kt)
"""


def test_parse_kotlin__file_facade_classes_and_frames_without_line() -> None:
    frames = parse_traceback(KOTLIN).exceptions[0].frames
    assert [(f.filename, f.lineno) for f in frames] == [("Main.kt", None), ("Main.kt", 4), ("Cart.kt", 7)]
    assert frames[-1].module == "com.acme.shop.CartKt"


def test_parse_ruby_34_quotes_and_rails_log() -> None:
    ruby34 = (
        "/app/lib/shop/cart.rb:14:in 'Integer#/': divided by 0 (ZeroDivisionError)\n"
        "\tfrom /app/lib/shop/cart.rb:14:in 'Shop::Cart#average_price'\n"
        "\tfrom app.rb:8:in '<main>'\n"
    )
    event = parse_traceback(ruby34)
    assert [f.function for f in event.exceptions[0].frames] == ["<main>", "average_price", "/"]
    rails = (
        "ZeroDivisionError (divided by 0):\n\n"
        "app/models/cart.rb:14:in `/'\napp/models/cart.rb:14:in `average_price'\n"
        "app/controllers/carts_controller.rb:5:in `show'\n"
    )
    event = parse_traceback(rails)
    assert event.headline == "ZeroDivisionError: divided by 0"
    assert crash(event) == ("app/models/cart.rb", 14, "/")


def test_parse_laravel_log_record() -> None:
    text = (
        '[2026-05-04 10:15:02] production.ERROR: Division by zero {"exception":"[object] '
        "(DivisionByZeroError(code: 0): Division by zero at /var/www/html/app/Services/Cart.php:22)\n"
        "[stacktrace]\n#0 /var/www/html/app/Services/Cart.php(22): intdiv()\n"
        "#1 /var/www/html/app/Http/Controllers/CartController.php(15): App\\\\Services\\\\Cart->average()\n"
        '#2 {main}\n"}\n'
    )
    event = parse_traceback(text)
    assert event.headline == "DivisionByZeroError: Division by zero"
    assert crash(event)[0] == "/var/www/html/app/Services/Cart.php"


def test_parse_lambda_python_error_json() -> None:
    """The Python runtime's error document: frames without the header or the exception line."""
    doc = {
        "errorMessage": "'name'",
        "errorType": "KeyError",
        "requestId": "c0f5a1d2-3b4e-4f60-9a7b-8c9d0e1f2a3b",
        "stackTrace": [
            '  File "/var/task/handlers/users.py", line 3, in profile\n    name = user["name"]\n',
        ],
    }
    event = parse_traceback(json.dumps(doc))
    assert event.headline == "KeyError: 'name'"
    assert crash(event) == ("/var/task/handlers/users.py", 3, "profile")
    assert event.exceptions[0].frames[0].context_line == 'name = user["name"]'


def test_parse_lambda_node_invoke_error_line() -> None:
    """Node's runtime logs `ERROR Invoke Error` and the error as JSON with its stack as a list."""
    stack = ["TypeError: x is undefined", "    at Runtime.handler (file:///var/task/index.mjs:4:11)"]
    line = "2026-05-04T10:15:02.120Z\tc0f5a1d2\tERROR\tInvoke Error \t" + json.dumps(
        {"errorType": "TypeError", "errorMessage": "x is undefined", "stack": stack}
    )
    event = parse_traceback(line)
    assert crash(event) == ("file:///var/task/index.mjs", 4, "Runtime.handler")


def test_parse_escaped_newlines_in_a_plain_log_line() -> None:
    """A logger that escaped the newlines of the message: `\\n` and `\\t` in one line."""
    line = (
        "2026-05-04 10:15:02 ERROR boom java.lang.IllegalStateException: empty\\n\\tat "
        "com.acme.Cart.total(Cart.java:7)\\n\\tat com.acme.Main.main(Main.java:3)"
    )
    assert crash(parse_traceback(line)) == ("Cart.java", 7, "total")


def test_parse_all__several_tracebacks_last_one_wins() -> None:
    text = (RAW / "go_divide.txt").read_text() + "\nINFO restarted\n" + (RAW / "python_zero.txt").read_text()
    events = parse_all(text)
    assert [e.platform for e in events] == ["go", "python"]
    assert parse_traceback(text).platform == "python"


# --- grouping ------------------------------------------------------------------------------------


def test_fingerprint__same_error_other_deploy_and_message_same_group() -> None:
    """Line numbers, deploy paths and message text change between deploys and requests; the group stays."""
    raw = (RAW / "node_total.txt").read_text()
    moved = raw.replace("/srv/app/releases/3/", "/srv/app/releases/4/").replace(":5:34", ":6:34")
    other_msg = raw.replace("reading 'price'", "reading 'cost'")
    a, b, c = (parse_traceback(t) for t in (raw, moved, other_msg))
    assert fingerprint(a) == fingerprint(b) == fingerprint(c) == a.event_id
    assert fingerprint(a) != fingerprint(load("node_cause.txt"))


# --- hostile text --------------------------------------------------------------------------------


def test_decode__too_big_binary_and_not_utf8_are_input_errors() -> None:
    with pytest.raises(InputError, match=r"10\.5 MB.*at most 5 MiB"):
        decode(b"x" * 10_500_000, "big.log")
    with pytest.raises(InputError, match="binary"):
        decode(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 40, "a.out")
    with pytest.raises(InputError, match="not UTF-8"):
        decode(b"\xff\xfe" * 5000, "latin.log")


def test_parse__no_traceback_says_what_was_expected() -> None:
    with pytest.raises(InputError, match="no stack trace found in the text"):
        parse_traceback("INFO all good\nWARNING disk 91% full\n")


def test_parse__hundred_thousand_frames_are_capped() -> None:
    """A runaway recursion (100k frames) parses, keeping the frames nearest the crash."""
    frames = "".join(f"    at f{i} (/srv/app/src/deep.js:{i + 1}:3)\n" for i in range(100_000))
    event = parse_traceback("RangeError: Maximum call stack size exceeded\n" + frames)
    kept = event.exceptions[0].frames
    assert len(kept) == MAX_FRAMES
    assert kept[-1].function == "f0", "the innermost frame (printed first) is the crash"


def test_parse__ansi_lone_surrogates_and_control_characters() -> None:
    text = "\x1b[1;31mTraceback (most recent call last):\x1b[0m\n" + (
        '  File "/srv/app/x.py", line 2, in f\x07\n    return 1 / 0\nZeroDivisionError: bad \ud800 byte\x1b[K\n'
    )
    event = parse_traceback(text)
    assert event.headline == "ZeroDivisionError: bad ? byte"
    assert crash(event) == ("/srv/app/x.py", 2, "f")
    surrogate_json = '{"stack_trace": "java.lang.X: \\ud800\\n\\tat a.B.c(B.java:1)"}'
    assert crash(parse_traceback(surrogate_json)) == ("B.java", 1, "c")


def test_parse__deep_json_and_one_huge_line_do_not_blow_up() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(InputError, match="no stack trace"):
        parse_traceback(deep)
    huge = "Error: x " + "a" * 3_000_000 + "\n    at f (/srv/a.js:1:1)\n"
    assert parse_traceback(huge).exceptions[0].frames[0].lineno == 1


def test_clean_lines__slack_links_and_entities() -> None:
    lines = clean_lines("see <https://x.example/a|the logs>\n```  File &quot;a&quot; &lt;module&gt;```")
    assert lines[0] == "see the logs"
    assert "&lt;" not in " ".join(lines) and "<module>" in " ".join(lines)


def test_parse__aws_cli_filter_log_events_json_and_text_output() -> None:
    """`aws logs filter-log-events` as a user pastes it: the JSON document (the CLI's documented shape,
    tests/fixtures/cloudwatch) with one event per line of a real trace, and `--output text` rows."""
    doc = json.loads((RAW.parent.parent / "cloudwatch" / "filter_log_events_cli_example.json").read_text())
    template = doc["events"][0]
    lines = [line for line in (RAW / "go_nil_map.txt").read_text().split("\n") if line]
    doc["events"] = [
        {**template, "message": line, "timestamp": template["timestamp"] + i} for i, line in enumerate(lines)
    ]
    event = parse_traceback(json.dumps(doc, indent=4))
    assert event.headline == "panic: assignment to entry in nil map"
    assert crash(event) == ("/srv/app/releases/3/go/cart/cart.go", 30, "(*Cart).Annotate")
    rows = "\n".join(
        f"EVENTS\t{i:056d}\t1712567844822\tweb/app/1\t{line}\t1712567843827" for i, line in enumerate(lines)
    )
    assert crash(parse_traceback(rows)) == ("/srv/app/releases/3/go/cart/cart.go", 30, "(*Cart).Annotate")


def test_parse_python__lambda_runtime_output_with_cr_and_no_break_spaces() -> None:
    """AWS Lambda's Python runtime (awslambdaric's own log_error): `[ERROR] Type: msg` first, lines joined
    by `\\r`, indentation in NO-BREAK SPACEs, no exception line at the end."""
    text = (RAW / "python_lambda_runtime.txt").read_bytes().decode()
    assert "\r" in text and "\xa0" in text, "the capture is the runtime's raw output"
    event = parse_traceback(text)
    assert event.headline == "ZeroDivisionError: division by zero"
    frame = event.exceptions[0].frames[-1]
    assert (frame.function, frame.context_line) == ("average_item_price", "return round(total / units, 2)")


PATHOLOGICAL = [
    "at " + "a " * 1999,
    "at " + "x (" * 1333,
    "at " + "a." * 1999 + "(",
    "at a(" + ") in " * 790,
    "a.rb:1:in `" + "'" * 3980,
    "#0 " + "a(1): " * 660,
    "PHP Fatal error:  Uncaught E: " + " in x:" * 660,
    "a(" + "b" * 3990,
    "a." * 1999 + ":",
    "Error" * 800,
    'File "' + '", line 1' * 400,
]


def test_parse__pathological_lines_are_parsed_in_linear_time() -> None:
    """4.4 MB of lines built to make backtracking regexes quadratic (the kind that took 50 s per 200 lines
    before anchors were matched only at keyword positions) parse as "no traceback"; a regression shows
    as this test taking minutes (bench/traceback_parse_speed.py prints the figure)."""
    text = "\n".join(line for line in PATHOLOGICAL for _ in range(100))
    assert len(text) > 4_000_000
    assert parse_all(text) == []


@pytest.mark.parametrize(
    "line",
    [
        '  File "/app/a.py", line 1, in f\n',  # frames quoted without header, never closed
        "/a.rb:1:in `x'\n",  # Ruby frames without a head
        '> File "/app/a.py", line 1, in f\n',  # the same, `>`-quoted
    ],
)
def test_find_traces__a_run_of_unclosed_frames_is_scanned_once_not_from_every_line(line: str) -> None:
    """Red team: an attacker-chosen message of repeated frame lines took 36 s at 100 KB (each line
    rescanned the rest of the run). Four times the text must cost about four times the time — a
    ratio measured side by side (quadratic gives 16), best of three against machine noise."""

    def cost(size: int) -> float:
        text = line * (size // len(line))
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            assert parse_all(text) == []
            best = min(best, time.perf_counter() - started)
        return best

    small, large = cost(16_000), cost(64_000)
    assert large / max(small, 1e-4) < 8, (small, large)
