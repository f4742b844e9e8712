/* cli.h — the ridge command-line tool: one cmd_* function per subcommand.
 *
 * Exit codes: 0 success, 1 usage error, 2 bad input (a file or text ridge
 * cannot use: the message names the file and the problem). */
#ifndef RG_TOOLS_CLI_H
#define RG_TOOLS_CLI_H

#include "core/error.h"

#define RG_EXIT_USAGE 1
#define RG_EXIT_BAD_INPUT 2

int cmd_info(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_synth(int argc, char **argv);

/* Print "ridge: <what>: <msg>" on stderr and return the exit code for status. */
int cli_report(const char *what, const rg_err *err);

#endif
