#include <stdio.h>
#include <string.h>

#include "server/cmd/cmd_adapt.h"
#include "server/cmd/cmd_calibrate.h"
#include "server/cmd/cmd_channel.h"
#include "server/cmd/cmd_cli.h"
#include "server/cmd/cmd_command.h"
#include "server/cmd/cmd_rank.h"
#include "server/cmd/cmd_semantic.h"
#include "server/cmd/cmd_sim.h"
#include "server/cmd/cmd_train.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"import", cmd_import, "load entities from JSON lines or CSV into a catalog"},
    {"build", cmd_build, "build a catalog's phonetic vector index"},
    {"serve", cmd_serve, "run the HTTP resolve service"},
    {"catalog", cmd_catalog, "list, create, describe or delete catalogs"},
    {"entity", cmd_entity, "upsert, get or delete entities (one, or JSON lines from stdin)"},
    {"snapshot", cmd_snapshot, "write one checksummed file of the database and its indexes"},
    {"resolve", cmd_resolve, "resolve one query from the command line"},
    {"eval", cmd_eval, "measure accuracy on a spoken-queries file"},
    {"config", cmd_config, "print the effective configuration"},
    {"phrases", cmd_phrases, "generate English phrases to simulate speech for"},
    {"simulate", cmd_simulate, "speak, perturb and recognise phrases into training pairs"},
    {"train", cmd_train, "train the learned phonetic encoder on simulated ASR pairs"},
    {"adapt", cmd_adapt, "fine-tune the learned encoder for one catalog's names"},
    {"channel", cmd_channel, "learn the phone noise channel from simulated ASR pairs"},
    {"train-semantic", cmd_train_semantic, "train the semantic word model (WordNet + equivalences)"},
    {"tune", cmd_tune, "choose the fused encoder's weight on held-out simulated queries"},
    {"calibrate", cmd_calibrate, "fit calibrated scores on held-out simulated queries"},
    {"rank-fit", cmd_rank_fit, "fit the learned second-stage ranker on simulated queries"},
    {"command-fit", cmd_command_fit, "fit the table that tells commands from catalog names"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: erd COMMAND [OPTIONS]   (erd COMMAND --help for its options)\n\n"
                 "erd resolves what a speech recogniser heard to catalog entities by how\n"
                 "names sound.\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-15s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CMD_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return CMD_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("erd 0.1.0\n");
        return CMD_EXIT_OK;
    }
    /* Commands that read the configuration point it elsewhere if asked. */
    cmd_model_dir("auto");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "erd: unknown command \"%s\"\n", argv[1]);
    usage(stderr);
    return CMD_EXIT_USAGE;
}
