"""Static checks of the Home Assistant add-on against the rules of the
Supervisor's and the add-on linter's own sources (no Supervisor runs here):

- home-assistant/supervisor, supervisor/store/data.py: repository.{json,
  yaml,yml} at the repository's root (name required, store/validate.py);
  add-ons are every config.{json,yaml,yml} under it (glob "**/config.*"),
  skipping paths with a part that starts with "." or is "rootfs";
- supervisor/addons/validate.py (_SCHEMA_ADDON_CONFIG): required name,
  version, slug (RE_SLUG [-_.A-Za-z0-9]+), description, arch (of
  ARCH_ALL); services as (mqtt|mysql):(provide|want|need); schema leaves
  matching RE_SCHEMA_ELEMENT (supervisor/addons/options.py), a list not
  directly holding a list; SCHEMA_BUILD_CONFIG for build.yaml
  (build_from per arch matching RE_DOCKER_IMAGE_BUILD, args str: str);
  SCHEMA_ADDON_TRANSLATIONS for translations/*.yaml;
- supervisor/addons/options.py (AddonOptions): the default options must
  pass the schema (unknown keys, types, missing non-optional keys);
- supervisor/addons/build.py: the build context is the add-on's folder,
  so every COPY source must be in it; BUILD_FROM, BUILD_VERSION and
  BUILD_ARCH are the build arguments;
- frenck/action-addon-linter, src/config.schema.json: no key outside its
  list, no key set to its default; src/lint.py: no "watchdog" (obsolete,
  use the image's HEALTHCHECK).

And the project's own rules: slug == folder name, version == CMakeLists.txt
project(VERSION), arch exactly amd64 and aarch64, mqtt:need, a label for
every option, the icons' sizes.

Python's standard library has no YAML parser, so config.yaml, build.yaml,
repository.yaml and the translations are kept to a small YAML subset that
read_yaml() below reads strictly: anything outside it (flow style beyond
[] and {}, anchors, multi-line scalars, tabs) fails the test rather than
being guessed. When PyYAML happens to be installed, its reading must agree.
"""

import json
import os
import re
import struct
import subprocess
import zlib

import cbtest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("CBEV_SOURCE_DIR", os.path.dirname(os.path.dirname(HERE)))
ADDON = os.path.join(SRC, "cb2mqtt")

# --- from the Supervisor's sources (see the module docstring) -------------
ARCH_ALL = {"aarch64", "amd64", "armhf", "armv7", "i386"}
FILE_SUFFIX_CONFIGURATION = (".yaml", ".yml", ".json")
RE_SLUG_FIELD = re.compile(r"^[-_.A-Za-z0-9]+$")
RE_SERVICE = re.compile(r"^(?P<service>mqtt|mysql):(?P<rights>provide|want|need)$")
RE_DOCKER_IMAGE_BUILD = re.compile(
    r"^([a-zA-Z\-\.:\d{}]+/)*?([\-\w{}]+)/([\-\w{}]+)(:[\.\-\w{}]+)?$")
RE_SCHEMA_ELEMENT = re.compile(
    r"^(?:"
    r"|bool"
    r"|email"
    r"|url"
    r"|port"
    r"|device(?:\((?P<filter>subsystem=[a-z]+)\))?"
    r"|str(?:\((?P<s_min>\d+)?,(?P<s_max>\d+)?\))?"
    r"|password(?:\((?P<p_min>\d+)?,(?P<p_max>\d+)?\))?"
    r"|int(?:\((?P<i_min>\d+)?,(?P<i_max>\d+)?\))?"
    r"|float(?:\((?P<f_min>[\d\.]+)?,(?P<f_max>[\d\.]+)?\))?"
    r"|match\((?P<match>.*)\)"
    r"|list\((?P<list>.+)\)"
    r")\??$")
REQUIRED = ("name", "version", "slug", "description", "arch")
# --- from frenck/action-addon-linter src/config.schema.json ----------------
LINTER_DEFAULTS = {
    "advanced": False, "apparmor": True, "audio": False, "auth_api": False, "auto_uart": False,
    "backup": "hot", "boot": "auto", "devicetree": False, "docker_api": False,
    "full_access": False, "gpio": False, "hassio_api": False, "hassio_role": "default",
    "homeassistant_api": False, "host_dbus": False, "host_ipc": False, "host_network": False,
    "host_pid": False, "host_uts": False, "ingress": False, "ingress_port": 8099,
    "ingress_stream": False, "init": True, "journald": False, "kernel_modules": False,
    "legacy": False, "options": {}, "panel_admin": True, "panel_icon": "mdi:puzzle",
    "realtime": False, "schema": {}, "stage": "stable", "startup": "application",
    "stdin": False, "timeout": 10, "tmpfs": False, "uart": False, "udev": False,
    "ulimits": {}, "usb": False, "video": False,
}
LINTER_KEYS = set(LINTER_DEFAULTS) | {
    "arch", "backup_exclude", "backup_pre", "backup_post", "breaking_versions", "codenotary",
    "description", "devices", "discovery", "environment", "homeassistant", "image",
    "ingress_entry", "machine", "map", "name", "panel_title", "ports", "ports_description",
    "privileged", "services", "slug", "url", "version", "watchdog", "webui"}


# ---------------------------------------------------------------------------
# The YAML subset

class YamlError(AssertionError):
    pass


_KEY = re.compile(r"^([A-Za-z0-9_][A-Za-z0-9_.-]*):(?: (.*))?$")
_INT = re.compile(r"^-?(0|[1-9][0-9]*)$")


def _scalar(text, where):
    if text.startswith('"'):
        if not text.endswith('"') or len(text) < 2:
            raise YamlError("%s: unterminated double-quoted scalar" % where)
        try:
            return json.loads(text)  # the escapes used here are JSON's
        except ValueError as e:
            raise YamlError("%s: double-quoted scalar outside the subset (%s)" % (where, e))
    if text.startswith("'"):
        if not text.endswith("'") or len(text) < 2:
            raise YamlError("%s: unterminated single-quoted scalar" % where)
        inner = text[1:-1]
        if re.search(r"(?<!')'(?!')", inner.replace("''", "")):
            raise YamlError("%s: stray quote" % where)
        return inner.replace("''", "'")
    if " #" in text:
        text = text.split(" #", 1)[0].rstrip()
    if text == "[]":
        return []
    if text == "{}":
        return {}
    if not text or text[0] in "&*!|>%@`{}[],?:-'\"#" or ": " in text or text.endswith(":"):
        raise YamlError("%s: scalar outside the subset: %r" % (where, text))
    if text in ("true", "false"):
        return text == "true"
    if text in ("null", "~") or text.lower() in ("yes", "no", "on", "off", "true", "false"):
        raise YamlError("%s: ambiguous scalar %r (quote it)" % (where, text))
    if _INT.match(text):
        return int(text)
    return text


def read_yaml(path):
    lines = []
    with open(path, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            raw = raw.rstrip("\n")
            if "\t" in raw:
                raise YamlError("%s:%d: tab" % (path, n))
            if not raw.strip() or raw.lstrip().startswith("#"):
                continue
            if raw.rstrip() != raw:
                raise YamlError("%s:%d: trailing blank" % (path, n))
            lines.append([len(raw) - len(raw.lstrip(" ")), raw.lstrip(" "), "%s:%d" % (path, n)])
    value, i = _block(lines, 0, 0)
    if i != len(lines):
        raise YamlError("%s: unexpected indentation" % lines[i][2])
    return value


def _block(lines, i, indent):
    if lines[i][1] == "-" or lines[i][1].startswith("- "):
        return _list(lines, i, indent)
    return _mapping(lines, i, indent)


def _child(lines, i, indent, where):
    """The nested block after a line at indent, or None."""
    if i < len(lines) and lines[i][0] > indent:
        return _block(lines, i, lines[i][0])
    if i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("- "):
        raise YamlError("%s: a list at its key's indentation is outside the subset" % where)
    raise YamlError("%s: empty value (write [] or {} or a quoted empty string)" % where)


def _list(lines, i, indent):
    out = []
    while i < len(lines) and lines[i][0] == indent and (
            lines[i][1] == "-" or lines[i][1].startswith("- ")):
        _, text, where = lines[i]
        item = text[1:].lstrip(" ")
        if not item:
            value, i = _child(lines, i + 1, indent, where)
        elif _KEY.match(item):
            # "- key: value": a mapping whose keys sit where "key" starts.
            lines[i] = [indent + len(text) - len(item), item, where]
            value, i = _mapping(lines, i, lines[i][0])
        else:
            value, i = _scalar(item, where), i + 1
        out.append(value)
    return out, i


def _mapping(lines, i, indent):
    out = {}
    while i < len(lines) and lines[i][0] == indent:
        _, text, where = lines[i]
        m = _KEY.match(text)
        if not m:
            raise YamlError("%s: not a 'key: value' line: %r" % (where, text))
        key, rest = m.group(1), m.group(2)
        if key in out:
            raise YamlError("%s: duplicate key %s" % (where, key))
        if rest is None or not rest.strip():
            out[key], i = _child(lines, i + 1, indent, where)
        else:
            out[key], i = _scalar(rest.strip(), where), i + 1
    if i < len(lines) and lines[i][0] > indent:
        raise YamlError("%s: unexpected indentation" % lines[i][2])
    return out, i


def load(path):
    data = read_yaml(path)
    try:
        import yaml  # optional cross-check: PyYAML must read the same
    except ImportError:
        return data
    with open(path, encoding="utf-8") as f:
        other = yaml.safe_load(f)
    assert other == data, "%s: the subset reader and PyYAML disagree:\n%r\n%r" % (path, data, other)
    return data


# ---------------------------------------------------------------------------
# Helpers for the rules

def project_version():
    with open(os.path.join(SRC, "CMakeLists.txt")) as f:
        m = re.search(r"project\(\s*cb2mqtt\s+VERSION\s+([0-9][0-9.]*)", f.read())
    assert m, "no project(cb2mqtt VERSION ...) in CMakeLists.txt"
    return m.group(1)


def tracked_files():
    try:
        out = subprocess.run(["git", "-C", SRC, "ls-files", "-co", "--exclude-standard"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=True)
        return out.stdout.decode().splitlines()
    except (OSError, subprocess.CalledProcessError):
        files = []
        for root, dirs, names in os.walk(SRC):
            dirs[:] = [d for d in dirs if not d.startswith((".", "build"))]
            files += [os.path.relpath(os.path.join(root, n), SRC) for n in names]
        return files


def check_schema_element(typ, where):
    if isinstance(typ, list):
        assert len(typ) == 1, "%s: a list schema holds one element" % where
        assert not isinstance(typ[0], list), "%s: a list may not directly contain a list" % where
        check_schema_element(typ[0], where + "[]")
    elif isinstance(typ, dict):
        for k, v in typ.items():
            assert isinstance(k, str), where
            check_schema_element(v, "%s.%s" % (where, k))
    else:
        assert isinstance(typ, str) and RE_SCHEMA_ELEMENT.match(typ), (
            "%s: %r is not a Supervisor schema type" % (where, typ))


def optional(typ):
    if isinstance(typ, list) and typ:
        typ = typ[0]
    return isinstance(typ, str) and typ.endswith("?")


def validate_option(typ, value, where):
    """AddonOptions._validate_element, strict about unknown keys."""
    if isinstance(typ, list):
        assert isinstance(value, list), "%s: must be a list" % where
        for n, v in enumerate(value):
            validate_option(typ[0], v, "%s[%d]" % (where, n))
        return
    if isinstance(typ, dict):
        assert isinstance(value, dict), "%s: must be a mapping" % where
        validate_options(typ, value, where)
        return
    assert value is not None, "%s: None is a missing required option" % where
    m = RE_SCHEMA_ELEMENT.match(typ)
    base = typ.rstrip("?")
    if base.startswith(("str", "password")):
        assert isinstance(value, str), "%s: %r is not text" % (where, value)
    elif base.startswith("int") or base == "port":
        assert isinstance(value, int) and not isinstance(value, bool), where
        if base == "port":
            assert 1 <= value <= 65535, where
    elif base == "bool":
        assert isinstance(value, bool), "%s: %r is not a bool" % (where, value)
    elif base.startswith("list("):
        assert value in m.group("list").split("|"), "%s: %r not in %s" % (where, value, base)
    elif base.startswith("match("):
        assert re.match(m.group("match"), str(value)), "%s: %r does not match" % (where, value)


def validate_options(schema, options, where="options"):
    for k, v in options.items():
        assert k in schema, "%s.%s: not in the schema" % (where, k)
        validate_option(schema[k], v, "%s.%s" % (where, k))
    for k in set(schema) - set(options):
        assert optional(schema[k]), "%s.%s: missing and not optional" % (where, k)


def png_size(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "%s is not a PNG" % path
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13, path
    crc = struct.unpack(">I", data[29:33])[0]
    assert zlib.crc32(data[12:29]) == crc, "%s: bad IHDR checksum" % path
    return struct.unpack(">II", data[16:24])


# ---------------------------------------------------------------------------
# The tests

def test_the_supervisor_finds_one_addon_here():
    found = []
    for rel in tracked_files():
        parts = rel.split("/")
        name = parts[-1]
        if not name.startswith("config.") or os.path.splitext(name)[1] not in FILE_SUFFIX_CONFIGURATION:
            continue
        if any(p.startswith(".") or p == "rootfs" for p in parts):
            continue
        found.append(rel)
    assert found == ["cb2mqtt/config.yaml"], "add-on folders the Supervisor would read: %r" % found
    repo_files = [f for f in tracked_files() if "/" not in f and f.startswith("repository.")]
    assert repo_files == ["repository.yaml"], repo_files
    repo = load(os.path.join(SRC, "repository.yaml"))
    assert isinstance(repo.get("name"), str) and repo["name"], "repository.yaml: name is required"
    assert set(repo) <= {"name", "url", "maintainer"}, repo
    assert re.match(r"^https://[^\s/]+/\S*$", repo.get("url", "")), repo


def test_config_yaml_follows_the_supervisor():
    cfg = load(os.path.join(ADDON, "config.yaml"))
    for k in REQUIRED:
        assert k in cfg, "config.yaml: %s is required" % k
    for k in ("name", "description", "slug", "version"):
        assert isinstance(cfg[k], str) and cfg[k], "config.yaml: %s must be text" % k
    assert RE_SLUG_FIELD.match(cfg["slug"]), cfg["slug"]
    assert cfg["slug"] == os.path.basename(ADDON), "slug %r != folder %r" % (
        cfg["slug"], os.path.basename(ADDON))
    assert cfg["version"] == project_version(), "version %r != the project's %r" % (
        cfg["version"], project_version())
    assert isinstance(cfg["arch"], list) and set(cfg["arch"]) <= ARCH_ALL, cfg["arch"]
    assert sorted(cfg["arch"]) == ["aarch64", "amd64"], cfg["arch"]
    assert re.match(r"^https://[^\s/]+/\S*$", cfg.get("url", "")), cfg.get("url")
    assert cfg.get("services") and all(RE_SERVICE.match(s) for s in cfg["services"]), cfg
    assert "mqtt:need" in cfg["services"], cfg["services"]
    assert "watchdog" not in cfg, "watchdog is obsolete: the image's HEALTHCHECK replaces it"
    assert "image" not in cfg, "no image: the Supervisor must build the Dockerfile here"
    unknown = set(cfg) - LINTER_KEYS
    assert not unknown, "keys the linter does not know: %s" % sorted(unknown)
    for k, default in LINTER_DEFAULTS.items():
        if k in cfg:
            assert cfg[k] != default, "%s is set to its default (%r): the linter flags it" % (
                k, default)
    with open(os.path.join(ADDON, "Dockerfile")) as f:
        dockerfile = f.read()
    # init: false because the bridge is PID 1 after the entrypoint's exec.
    assert cfg.get("init") is False and "os.execve" in open(
        os.path.join(ADDON, "entrypoint.py")).read()
    assert re.search(r'^HEALTHCHECK .*\n?.*CMD \["cb2mqtt", "--healthcheck"\]', dockerfile, re.M)
    assert re.search(r"^FROM \$\{BUILD_FROM\}$", dockerfile, re.M), "the final stage uses BUILD_FROM"
    assert not re.search(r"^USER ", dockerfile, re.M), (
        "the entrypoint must start as root: the Supervisor's /data is root's")


def test_options_and_schema():
    cfg = load(os.path.join(ADDON, "config.yaml"))
    schema, options = cfg["schema"], cfg["options"]
    assert isinstance(schema, dict) and isinstance(options, dict)
    check_schema_element(schema, "schema")
    validate_options(schema, options)
    assert schema["broadcasters"] == [{"name": schema["broadcasters"][0]["name"],
                                       "token": "password"}], schema["broadcasters"]
    name_re = RE_SCHEMA_ELEMENT.match(schema["broadcasters"][0]["name"]).group("match")
    for good in ("alice", "Bob_2", "a-b", "x" * 64):
        assert re.match(name_re, good), good
    for bad in ("", "al ice", "a/b", "x" * 65, "ä"):
        assert not re.match(name_re, bad), bad
    for k in ("mqtt_host", "mqtt_port", "mqtt_username", "mqtt_password", "mqtt_tls",
              "metrics_port"):
        assert optional(schema[k]), "%s must be optional" % k
    assert schema["mqtt_password"].startswith("password"), "a password field hides its value"
    # Every option is read by the entrypoint.
    with open(os.path.join(ADDON, "entrypoint.py")) as f:
        entry = f.read()
    for k in schema:
        assert '"%s"' % k in entry, "entrypoint.py does not read the option %s" % k


def test_translations_label_every_option():
    cfg = load(os.path.join(ADDON, "config.yaml"))
    tdir = os.path.join(ADDON, "translations")
    files = sorted(os.listdir(tdir))
    assert "en.yaml" in files, files
    for name in files:
        assert os.path.splitext(name)[1] in FILE_SUFFIX_CONFIGURATION, name
        tr = load(os.path.join(tdir, name))
        assert set(tr) <= {"configuration", "network"}, "%s: %s" % (name, sorted(tr))
        conf = tr["configuration"]
        assert set(conf) == set(cfg["schema"]), "%s: labels %s vs options %s" % (
            name, sorted(conf), sorted(cfg["schema"]))
        for k, v in conf.items():
            assert isinstance(v.get("name"), str) and v["name"], "%s: %s has no name" % (name, k)
            assert isinstance(v.get("description"), str), "%s: %s has no description" % (name, k)
            assert set(v) <= {"name", "description", "fields"}, (name, k, v)
            sub = cfg["schema"][k]
            sub = sub[0] if isinstance(sub, list) else sub
            if isinstance(sub, dict):
                # SCHEMA_TRANSLATION_CONFIGURATION: fields label the keys of
                # a nested option, each with a name.
                fields = v.get("fields", {})
                assert set(fields) == set(sub), "%s: %s fields %s vs %s" % (
                    name, k, sorted(fields), sorted(sub))
                for fk, fv in fields.items():
                    assert isinstance(fv.get("name"), str) and fv["name"], (name, k, fk)


def test_build_yaml_and_dockerfile():
    cfg = load(os.path.join(ADDON, "config.yaml"))
    build = load(os.path.join(ADDON, "build.yaml"))
    assert set(build) <= {"build_from", "squash", "args", "labels"}, build
    assert set(build["build_from"]) == set(cfg["arch"]), "build_from must cover every arch"
    for arch, image in build["build_from"].items():
        assert RE_DOCKER_IMAGE_BUILD.match(image), "%s: %r" % (arch, image)
        assert "debian" in image and image.endswith(":bookworm-slim"), image
    for k, v in build.get("args", {}).items():
        assert isinstance(k, str) and isinstance(v, str), (k, v)
    assert build["args"]["CB2MQTT_GIT_URL"] == cfg["url"], "the source is fetched from the add-on's url"
    with open(os.path.join(ADDON, "Dockerfile")) as f:
        dockerfile = f.read()
    for arg in ("BUILD_FROM", "BUILD_VERSION", "CB2MQTT_GIT_URL"):
        assert re.search(r"^ARG %s\b" % arg, dockerfile, re.M), "Dockerfile lacks ARG " + arg
    # The build context is this folder: COPY can only take files from it.
    for m in re.finditer(r"^COPY (?!--from)(\S+) ", dockerfile, re.M):
        assert os.path.isfile(os.path.join(ADDON, m.group(1))), (
            "COPY %s: not in the add-on folder (the Supervisor's build context)" % m.group(1))
    # The same binary and packages as the project's image.
    assert "/src/docker/build-binary.sh /src /build /out/cb2mqtt" in dockerfile
    assert "/src/docker/runtime-packages.txt" in dockerfile


def test_docs_and_icons():
    for name in ("README.md", "DOCS.md", "CHANGELOG.md"):
        path = os.path.join(ADDON, name)
        assert os.path.isfile(path) and os.path.getsize(path) > 100, path
    with open(os.path.join(ADDON, "CHANGELOG.md")) as f:
        assert project_version() in f.read(), "CHANGELOG.md does not name this version"
    assert png_size(os.path.join(ADDON, "icon.png")) == (128, 128)
    w, h = png_size(os.path.join(ADDON, "logo.png"))
    assert 200 <= w <= 300 and 80 <= h <= 120, (w, h)


def test_the_subset_reader_is_strict():
    d = cbtest.tempdir()
    bad = ["a: [1, 2]\n", "a: &x 1\n", "a: |\n  b\n", "a:\n\tb: 1\n", "a: yes\n", "a:\n",
           "a: 1\na: 2\n", "a: b: c\n", "- a\nb: 1\n"]
    for n, text in enumerate(bad):
        p = os.path.join(d, "%d.yaml" % n)
        with open(p, "w") as f:
            f.write(text)
        try:
            read_yaml(p)
        except YamlError:
            continue
        raise AssertionError("read outside the subset: %r" % text)
    p = os.path.join(d, "good.yaml")
    with open(p, "w") as f:
        f.write('a:\n  - x: 1\n    y: "q\\"z"\n  - b\nc: []\nd: match(^[a-z]{1,2}$)\n')
    assert read_yaml(p) == {"a": [{"x": 1, "y": 'q"z'}, "b"], "c": [], "d": "match(^[a-z]{1,2}$)"}


if __name__ == "__main__":
    cbtest.run([test_the_supervisor_finds_one_addon_here, test_config_yaml_follows_the_supervisor,
                test_options_and_schema, test_translations_label_every_option,
                test_build_yaml_and_dockerfile, test_docs_and_icons,
                test_the_subset_reader_is_strict])
