/* SPDX-License-Identifier: GPL-2.0 */
/* The command line's commands (uringcr.c, verify.c). */
#ifndef UCR_CLI_H
#define UCR_CLI_H

#define EXIT_USAGE	2
#define EXIT_REFUSED	3

int cmd_verify(int argc, char **argv);

#endif /* UCR_CLI_H */
