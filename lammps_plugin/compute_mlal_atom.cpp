/* mlal: compute mlal/atom, see compute_mlal_atom.h */

#include "compute_mlal_atom.h"

#include "atom.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "update.h"

#include <algorithm>
#include <mpi.h>

using namespace LAMMPS_NS;

ComputeMLALAtom::ComputeMLALAtom(LAMMPS *lmp, int narg, char **arg) :
    Compute(lmp, narg, arg), nmax(0), values(nullptr)
{
  if (narg != 3) error->all(FLERR, "Usage: compute ID group mlal/atom (no further arguments)");
  peratom_flag = 1;
  size_peratom_cols = 3;
  vector_flag = 1;
  size_vector = 4;
  extvector = 0;
  timeflag = 1;    // keep the list of steps we will be invoked on (matchstep)
  vec[0] = vec[1] = vec[2] = vec[3] = 0.0;
}

ComputeMLALAtom::~ComputeMLALAtom()
{
  // no call into the pair here: at LAMMPS shutdown it may already be gone;
  // pair_style mlal forgets its requesters at every init.
  memory->destroy(values);
}

PairMLAL *ComputeMLALAtom::current_pair()
{
  auto pair = dynamic_cast<PairMLAL *>(force->pair_match("mlal", 1));
  if (!pair) error->all(FLERR, "compute mlal/atom requires pair_style mlal (alone or in hybrid)");
  return pair;
}

void ComputeMLALAtom::init()
{
  PairMLAL *pair = current_pair();
  if (pair->uncertainty_mode() == PairMLAL::UNC_NO)
    error->all(FLERR, "compute mlal/atom needs gamma/sigma, but pair_style mlal has 'uncertainty no'");
  pair->add_requester(this);
}

void ComputeMLALAtom::compute_peratom()
{
  invoked_peratom = update->ntimestep;
  PairMLAL *pair = current_pair();
  pair->ensure_uncertainty("compute mlal/atom");
  if (atom->nmax > nmax) {
    memory->destroy(values);
    nmax = atom->nmax;
    memory->create(values, nmax, 3, "mlal/atom:values");
    array_atom = values;
  }
  int nlocal = atom->nlocal;
  int *mask = atom->mask;
  const double *g = pair->atom_gamma(), *s = pair->atom_sigma(), *e = pair->atom_energy_sigma();
  for (int i = 0; i < nlocal; i++) {
    bool in = mask[i] & groupbit;
    values[i][0] = in ? g[i] : 0.0;
    values[i][1] = in ? s[i] : 0.0;
    values[i][2] = in ? e[i] : 0.0;
  }
}

void ComputeMLALAtom::compute_vector()
{
  invoked_vector = update->ntimestep;
  PairMLAL *pair = current_pair();
  pair->ensure_uncertainty("compute mlal/atom");
  int nlocal = atom->nlocal;
  int *mask = atom->mask;
  const double *g = pair->atom_gamma(), *s = pair->atom_sigma();
  double local[2] = {0.0, 0.0}, global[2];
  for (int i = 0; i < nlocal; i++)
    if (mask[i] & groupbit) {
      local[0] = std::max(local[0], g[i]);
      local[1] = std::max(local[1], s[i]);
    }
  MPI_Allreduce(local, global, 2, MPI_DOUBLE, MPI_MAX, world);
  vec[0] = global[0];
  vec[1] = global[1];
  vec[2] = pair->energy_sigma();
  vec[3] = (double) pair->uncertainty_count();
  vector = vec;
}

double ComputeMLALAtom::memory_usage()
{
  return (double) nmax * 3 * sizeof(double);
}
