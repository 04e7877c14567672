#!/usr/bin/env python3
"""Local changes to the reference llama.cpp tree (commit 0c1e570), applied idempotently.

1. tests/test-backend-ops.cpp: the environment variable
   GGML_TEST_RPC_SERVERS=host:port[,host:port...] registers those ggml-RPC servers right after
   ggml_backend_load_all(), so `test-backend-ops test -b RPC0` compares the remote device with the
   client's own CPU backend. Upstream tests only the devices already in the registry, and the RPC
   registry stays empty until someone calls ggml_backend_rpc_add_server.

2. examples/greedy-ids/: a tool derived from examples/simple/simple.cpp (greedy sampling, one
   sequence) that prints `GREEDY_ID <id>` on stdout for every sampled token, the text on stderr,
   and takes the RPC endpoints, threads, tensor split, flash attention, K/V cache types,
   no-repack and tensor buffer overrides (e.g. output=CPU) as flags or environment variables
   (see USAGE below). It is added to
   examples/CMakeLists.txt, so the normal build makes it.

Files are rewritten only when their content changes, so a rerun does not make ninja rebuild.
Usage: patch_llama.py LLAMA_CPP_SOURCE_DIR
"""

import sys
from pathlib import Path

MARKER = "TENSOR_RPC_LOCAL_PATCH"


class PatchError(Exception):
    pass


def write_if_changed(path: Path, text: str) -> None:
    if path.exists() and path.read_text() == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"{path}: written", file=sys.stderr)


def replace_once(text: str, old: str, new: str, what: str) -> str:
    count = text.count(old)
    if count != 1:
        raise PatchError(f"{what}: expected the anchor once, found it {count} times:\n{old}")
    return text.replace(old, new)


# --- 1. test-backend-ops -------------------------------------------------------------------

BACKEND_OPS_ANCHOR = "    // load and enumerate backends\n    ggml_backend_load_all();\n"

BACKEND_OPS_ADDITION = f"""
    // {MARKER}: ggml-RPC servers to test, from GGML_TEST_RPC_SERVERS=host:port[,host:port...]
    if (const char * rpc_servers = getenv("GGML_TEST_RPC_SERVERS")) {{
        ggml_backend_reg_t rpc_reg = ggml_backend_reg_by_name("RPC");
        if (rpc_reg == nullptr) {{
            fprintf(stderr, "GGML_TEST_RPC_SERVERS: this build has no RPC backend (GGML_RPC=OFF)\\n");
            return 1;
        }}
        typedef ggml_backend_reg_t (*rpc_add_server_t)(const char * endpoint);
        auto rpc_add_server = (rpc_add_server_t) ggml_backend_reg_get_proc_address(rpc_reg, "ggml_backend_rpc_add_server");
        if (rpc_add_server == nullptr) {{
            fprintf(stderr, "GGML_TEST_RPC_SERVERS: ggml_backend_rpc_add_server not found\\n");
            return 1;
        }}
        std::string list(rpc_servers);
        size_t start = 0;
        while (start <= list.size()) {{
            size_t comma = list.find(',', start);
            if (comma == std::string::npos) {{
                comma = list.size();
            }}
            std::string endpoint = list.substr(start, comma - start);
            start = comma + 1;
            if (endpoint.empty()) {{
                continue;
            }}
            ggml_backend_reg_t server_reg = rpc_add_server(endpoint.c_str());
            if (server_reg == nullptr) {{
                fprintf(stderr, "GGML_TEST_RPC_SERVERS: no devices at %s\\n", endpoint.c_str());
                return 1;
            }}
            ggml_backend_register(server_reg);
            fprintf(stderr, "GGML_TEST_RPC_SERVERS: registered %s\\n", endpoint.c_str());
        }}
    }}
"""


def patch_test_backend_ops(src: Path) -> None:
    path = src / "tests" / "test-backend-ops.cpp"
    text = path.read_text()
    if MARKER in text:
        return
    text = replace_once(text, BACKEND_OPS_ANCHOR, BACKEND_OPS_ANCHOR + BACKEND_OPS_ADDITION, str(path))
    write_if_changed(path, text)


# --- 2. greedy-ids -------------------------------------------------------------------------

USAGE = r"""    printf("\nusage: %s -m model.gguf [options] [prompt]\n", argv[0]);
    printf("  -n N              tokens to predict (default 32)\n");
    printf("  -ngl N            layers to offload (default 99: all)\n");
    printf("  --rpc H:P[,H:P]   ggml-RPC servers to offload to       (env GREEDY_RPC)\n");
    printf("  -t N              threads of the context              (env GREEDY_THREADS)\n");
    printf("  -ts A[,B...]      tensor split over the devices       (env GREEDY_TENSOR_SPLIT)\n");
    printf("  -fa on|off|auto   flash attention (default off)       (env GREEDY_FLASH_ATTN)\n");
    printf("  -ctk TYPE         K cache type, e.g. f16, q8_0        (env GREEDY_CACHE_K)\n");
    printf("  -ctv TYPE         V cache type                        (env GREEDY_CACHE_V)\n");
    printf("  --no-repack       no CPU_REPACK weight layout         (env GREEDY_NO_REPACK=1)\n");
    printf("  -ot RE=BUFT[,..]  tensors matching RE in buffer type BUFT, e.g. output=CPU\n");
    printf("                                                        (env GREEDY_OVERRIDE_TENSOR)\n");
    printf("stdout: one line 'GREEDY_ID <id>' per sampled token; the text goes to stderr\n");
    printf("\n");
"""

# Helpers placed before main(): parsing of the extra options, shared by flags and env.
HELPERS = f"""// {MARKER}: greedy-ids, derived from examples/simple/simple.cpp
static bool parse_cache_type(const char * name, ggml_type & out) {{
    for (int t = 0; t < GGML_TYPE_COUNT; t++) {{
        const char * type_name = ggml_type_name((ggml_type) t);
        if (type_name != nullptr && strcmp(type_name, name) == 0) {{
            out = (ggml_type) t;
            return true;
        }}
    }}
    fprintf(stderr, "greedy-ids: unknown cache type '%s'\\n", name);
    return false;
}}

static bool parse_flash_attn(const char * value, llama_flash_attn_type & out) {{
    if (strcmp(value, "on") == 0 || strcmp(value, "1") == 0) {{
        out = LLAMA_FLASH_ATTN_TYPE_ENABLED;
    }} else if (strcmp(value, "off") == 0 || strcmp(value, "0") == 0) {{
        out = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    }} else if (strcmp(value, "auto") == 0) {{
        out = LLAMA_FLASH_ATTN_TYPE_AUTO;
    }} else {{
        fprintf(stderr, "greedy-ids: flash attention must be on, off or auto, not '%s'\\n", value);
        return false;
    }}
    return true;
}}

static std::vector<std::string> split_commas(const std::string & list) {{
    std::vector<std::string> parts;
    size_t start = 0;
    while (start <= list.size()) {{
        size_t comma = list.find(',', start);
        if (comma == std::string::npos) {{
            comma = list.size();
        }}
        if (comma > start) {{
            parts.push_back(list.substr(start, comma - start));
        }}
        start = comma + 1;
    }}
    return parts;
}}

static bool parse_tensor_split(const std::string & list, std::vector<float> & out) {{
    out.assign(llama_max_devices(), 0.0f);
    std::vector<std::string> parts = split_commas(list);
    if (parts.size() > out.size()) {{
        fprintf(stderr, "greedy-ids: tensor split has %zu parts, at most %zu devices\\n", parts.size(), out.size());
        return false;
    }}
    for (size_t i = 0; i < parts.size(); i++) {{
        try {{
            out[i] = std::stof(parts[i]);
        }} catch (...) {{
            fprintf(stderr, "greedy-ids: bad tensor split value '%s'\\n", parts[i].c_str());
            return false;
        }}
    }}
    return true;
}}

static bool add_rpc_servers(const std::string & list) {{
    ggml_backend_load_all();
    ggml_backend_reg_t rpc_reg = ggml_backend_reg_by_name("RPC");
    if (rpc_reg == nullptr) {{
        fprintf(stderr, "greedy-ids: this build has no RPC backend\\n");
        return false;
    }}
    typedef ggml_backend_reg_t (*rpc_add_server_t)(const char * endpoint);
    auto rpc_add_server = (rpc_add_server_t) ggml_backend_reg_get_proc_address(rpc_reg, "ggml_backend_rpc_add_server");
    if (rpc_add_server == nullptr) {{
        fprintf(stderr, "greedy-ids: ggml_backend_rpc_add_server not found\\n");
        return false;
    }}
    for (const std::string & endpoint : split_commas(list)) {{
        ggml_backend_reg_t server_reg = rpc_add_server(endpoint.c_str());
        if (server_reg == nullptr) {{
            fprintf(stderr, "greedy-ids: no devices at %s\\n", endpoint.c_str());
            return false;
        }}
        ggml_backend_register(server_reg);
        fprintf(stderr, "greedy-ids: RPC server %s registered\\n", endpoint.c_str());
    }}
    return true;
}}

// "REGEX=BUFT[,REGEX=BUFT...]" -> overrides, terminated by {{nullptr, nullptr}}; the patterns
// live in `patterns`, which must outlive the model load
static bool parse_overrides(const std::string & list, std::vector<std::string> & patterns,
                            std::vector<llama_model_tensor_buft_override> & out) {{
    std::vector<std::string> items = split_commas(list);
    patterns.clear();
    patterns.reserve(items.size());
    out.clear();
    for (const std::string & item : items) {{
        size_t eq = item.rfind('=');
        if (eq == std::string::npos || eq == 0 || eq + 1 == item.size()) {{
            fprintf(stderr, "greedy-ids: tensor override '%s' is not REGEX=BUFT\\n", item.c_str());
            return false;
        }}
        const std::string buft_name = item.substr(eq + 1);
        ggml_backend_buffer_type_t buft = nullptr;
        for (size_t i = 0; i < ggml_backend_dev_count() && buft == nullptr; i++) {{
            ggml_backend_buffer_type_t dev_buft = ggml_backend_dev_buffer_type(ggml_backend_dev_get(i));
            if (buft_name == ggml_backend_buft_name(dev_buft)) {{
                buft = dev_buft;
            }}
        }}
        if (buft == nullptr) {{
            fprintf(stderr, "greedy-ids: no buffer type named '%s'\\n", buft_name.c_str());
            return false;
        }}
        patterns.push_back(item.substr(0, eq));
        out.push_back({{patterns.back().c_str(), buft}});
    }}
    out.push_back({{nullptr, nullptr}});
    return true;
}}

static void print_usage(int, char ** argv) {{
"""

# Defaults from the environment; flags parsed later override them.
OPTION_DEFAULTS = """    int n_predict = 32;
    // extra options of greedy-ids: environment first, flags override
    std::string rpc_servers = getenv("GREEDY_RPC") ? getenv("GREEDY_RPC") : "";
    int n_threads = getenv("GREEDY_THREADS") ? atoi(getenv("GREEDY_THREADS")) : 0;
    std::string tensor_split = getenv("GREEDY_TENSOR_SPLIT") ? getenv("GREEDY_TENSOR_SPLIT") : "";
    std::string flash_attn = getenv("GREEDY_FLASH_ATTN") ? getenv("GREEDY_FLASH_ATTN") : "off";
    std::string cache_k = getenv("GREEDY_CACHE_K") ? getenv("GREEDY_CACHE_K") : "f16";
    std::string cache_v = getenv("GREEDY_CACHE_V") ? getenv("GREEDY_CACHE_V") : "f16";
    bool no_repack = getenv("GREEDY_NO_REPACK") != nullptr && strcmp(getenv("GREEDY_NO_REPACK"), "0") != 0;
    std::string overrides = getenv("GREEDY_OVERRIDE_TENSOR") ? getenv("GREEDY_OVERRIDE_TENSOR") : "";
"""

EXTRA_FLAGS = """            } else if (strcmp(argv[i], "--no-repack") == 0) {
                no_repack = true;
            } else if (i + 1 < argc && (strcmp(argv[i], "--rpc") == 0 || strcmp(argv[i], "-t") == 0 ||
                                        strcmp(argv[i], "-ts") == 0 || strcmp(argv[i], "-fa") == 0 ||
                                        strcmp(argv[i], "-ctk") == 0 || strcmp(argv[i], "-ctv") == 0 ||
                                        strcmp(argv[i], "-ot") == 0)) {
                const std::string flag = argv[i];
                const std::string value = argv[++i];
                if (flag == "--rpc") {
                    rpc_servers = value;
                } else if (flag == "-t") {
                    try {
                        n_threads = std::stoi(value);
                    } catch (...) {
                        print_usage(argc, argv);
                        return 1;
                    }
                } else if (flag == "-ts") {
                    tensor_split = value;
                } else if (flag == "-fa") {
                    flash_attn = value;
                } else if (flag == "-ctk") {
                    cache_k = value;
                } else if (flag == "-ot") {
                    overrides = value;
                } else {
                    cache_v = value;
                }
            } else {
                // prompt starts here
"""

CHECK_OPTIONS = """    llama_backend_init();

    llama_flash_attn_type flash_attn_type;
    ggml_type type_k;
    ggml_type type_v;
    std::vector<float> tensor_split_values;
    if (!parse_flash_attn(flash_attn.c_str(), flash_attn_type) ||
        !parse_cache_type(cache_k.c_str(), type_k) || !parse_cache_type(cache_v.c_str(), type_v) ||
        !parse_tensor_split(tensor_split, tensor_split_values)) {
        return 1;
    }
    if (!rpc_servers.empty() && !add_rpc_servers(rpc_servers)) {
        return 1;
    }
    std::vector<std::string> override_patterns;
    std::vector<llama_model_tensor_buft_override> override_list;
    if (!overrides.empty() && !parse_overrides(overrides, override_patterns, override_list)) {
        return 1;
    }
"""

MODEL_OPTIONS = """    model_params.n_gpu_layers = ngl;
    model_params.use_extra_bufts = !no_repack;
    if (!tensor_split.empty()) {
        model_params.tensor_split = tensor_split_values.data();
    }
    if (!override_list.empty()) {
        model_params.tensor_buft_overrides = override_list.data();
    }
"""

CONTEXT_OPTIONS = """    ctx_params.no_perf = false;
    ctx_params.flash_attn_type = flash_attn_type;
    ctx_params.type_k = type_k;
    ctx_params.type_v = type_v;
    if (n_threads > 0) {
        ctx_params.n_threads = n_threads;
        ctx_params.n_threads_batch = n_threads;
    }
"""


def make_greedy_ids(simple: str) -> str:
    what = "examples/simple/simple.cpp"
    text = simple
    text = replace_once(text, '#include "llama.h"\n',
                        '#include "llama.h"\n#include "ggml-backend.h"\n#include <cstdlib>\n', what)
    # usage: the helpers go right before print_usage, whose body is replaced
    start = text.find("static void print_usage(int, char ** argv) {\n")
    end = text.find("}\n", start)
    if start < 0 or end < 0:
        raise PatchError(f"{what}: print_usage not found")
    text = text[:start] + HELPERS + USAGE + text[end:]
    text = replace_once(text, "    int n_predict = 32;\n", OPTION_DEFAULTS, what)
    text = replace_once(text, "            } else {\n                // prompt starts here\n", EXTRA_FLAGS, what)
    text = replace_once(text, "    llama_backend_init();\n", CHECK_OPTIONS, what)
    text = replace_once(text, "    model_params.n_gpu_layers = ngl;\n", MODEL_OPTIONS, what)
    text = replace_once(text, "    ctx_params.no_perf = false;\n", CONTEXT_OPTIONS, what)
    # token ids on stdout (before the end-of-generation check, so an EOG token is listed too)
    text = replace_once(
        text,
        "            new_token_id = llama_sampler_sample(smpl, ctx, -1);\n",
        "            new_token_id = llama_sampler_sample(smpl, ctx, -1);\n"
        '            printf("GREEDY_ID %d\\n", new_token_id);\n'
        "            fflush(stdout);\n",
        what,
    )
    # the text (prompt and pieces) on stderr, so stdout holds only the ids
    if text.count('printf("%s", s.c_str());') != 2:
        raise PatchError(f"{what}: expected two lines printing the text (prompt, pieces)")
    text = text.replace('printf("%s", s.c_str());', 'fprintf(stderr, "%s", s.c_str());')
    text = replace_once(text, '    printf("\\n");\n\n    const auto t_main_end', '    fprintf(stderr, "\\n");\n\n    const auto t_main_end', what)
    return text


GREEDY_CMAKE = f"""# {MARKER}: greedy-ids (derived from examples/simple)
set(TARGET greedy-ids)
add_executable(${{TARGET}} greedy-ids.cpp)
target_link_libraries(${{TARGET}} PRIVATE llama ggml ${{CMAKE_THREAD_LIBS_INIT}})
target_compile_features(${{TARGET}} PRIVATE cxx_std_17)
"""


def add_greedy_ids(src: Path) -> None:
    simple = (src / "examples" / "simple" / "simple.cpp").read_text()
    out_dir = src / "examples" / "greedy-ids"
    write_if_changed(out_dir / "greedy-ids.cpp", make_greedy_ids(simple))
    write_if_changed(out_dir / "CMakeLists.txt", GREEDY_CMAKE)
    cmake = src / "examples" / "CMakeLists.txt"
    text = cmake.read_text()
    if "add_subdirectory(greedy-ids)" in text:
        return
    text = replace_once(text, "    add_subdirectory(simple)\n",
                        "    add_subdirectory(simple)\n    add_subdirectory(greedy-ids)\n", str(cmake))
    write_if_changed(cmake, text)


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    src = Path(sys.argv[1])
    try:
        patch_test_backend_ops(src)
        add_greedy_ids(src)
    except (PatchError, OSError) as e:
        print(f"patch_llama.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
