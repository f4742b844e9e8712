/* cli.h — the ridge command-line tool: one cmd_* function per subcommand.
 *
 * Exit codes: 0 success, 1 usage error, 2 bad input (a file or text ridge
 * cannot use: the message names the file and the problem). */
#ifndef RG_TOOLS_CLI_H
#define RG_TOOLS_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"
#include "perf/roofline.h"
#include "tok/tokenizer.h"

#define RG_EXIT_USAGE 1
#define RG_EXIT_BAD_INPUT 2

int cmd_info(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_roofline(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_profile(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_loadgen(int argc, char **argv);

/* Tokenize text (special tokens parsed; BOS/EOS per the model when add_special)
 * into a malloc'd array; returns the count, or -1 with the message printed. */
int64_t cli_tokenize(const rg_tokenizer *tok, const char *text, bool add_special, int32_t **out);

/* The whole file as a NUL-terminated malloc'd string; NULL if unreadable. */
char *cli_read_text_file(const char *path);

/* Print s on stdout as a JSON string (quoted, escaped; bytes >= 0x80 as they are). */
void cli_json_string(const char *s);

/* This machine's ceilings: loaded from path (NULL: the default,
 * ~/.cache/ridge/roofline.json), else measured (quick: seconds) and saved there.
 * Returns 0, or the exit code with the message printed. */
int cli_roofline(const char *path, int n_threads, bool quick, bool quiet, rg_roofline *out);

/* Print "ridge: <what>: <msg>" on stderr and return the exit code for status. */
int cli_report(const char *what, const rg_err *err);

#endif
