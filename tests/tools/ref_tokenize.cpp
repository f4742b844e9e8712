// ref_tokenize.cpp — test tooling, not part of ridge: tokenize inputs with
// llama.cpp's own llama_tokenize so ridge's tokenizer can be compared with an
// independent implementation (see gen_smollm2_vectors.sh).
//
// usage: ref_tokenize MODEL.gguf INPUT [add_special 0|1] [parse_special 0|1]
// INPUT holds texts separated by "\n__ggml_vocab_test__\n" (llama.cpp's
// test-tokenizer-0 format); prints one line of space-prefixed ids per text.
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "llama.h"

static void quiet(enum ggml_log_level, const char *, void *) {}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL INPUT [add_special] [parse_special]\n", argv[0]);
        return 2;
    }
    bool add_special = argc > 3 && argv[3][0] == '1', parse_special = argc > 4 && argv[4][0] == '1';
    llama_log_set(quiet, nullptr);
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    mp.vocab_only = true;
    llama_model *model = llama_model_load_from_file(argv[1], mp);
    if (!model) return 1;
    const llama_vocab *vocab = llama_model_get_vocab(model);
    std::ifstream f(argv[2], std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    std::string all = ss.str(), sep = "\n__ggml_vocab_test__\n";
    for (size_t pos = 0, end; (end = all.find(sep, pos)) != std::string::npos; pos = end + sep.size()) {
        std::string text = all.substr(pos, end - pos);
        std::vector<llama_token> ids(text.size() * 4 + 16);
        int n = llama_tokenize(vocab, text.data(), (int)text.size(), ids.data(), (int)ids.size(), add_special,
                               parse_special);
        for (int i = 0; i < n; i++) printf(" %d", ids[i]);
        printf("\n");
    }
    llama_model_free(model);
    return 0;
}
