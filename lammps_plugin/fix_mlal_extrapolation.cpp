/* ----------------------------------------------------------------------
   mlal: on-the-fly extrapolation control for active learning.

   fix ID group mlal/extrapolation N [select G1] [break G2]
                                     [sigma_select S1] [sigma_break S2] [file F]

   Needs pair_style mlal. Every N steps (and at the setup of a run; in
   minimize: on iterations that are multiples of N) the pair style evaluates
   gamma and sigma. Over the atoms of the group:
     max gamma > G1 (or max sigma > S1, eV/A): the whole cell is appended to
       file F as one extended-XYZ frame (ase.io.read reads it): Lattice, pbc,
       step, gamma_max, sigma_max; per atom: species, pos (A, box origin at 0),
       gamma, sigma, lammps_id, lammps_type; atoms sorted by ID, written by
       rank 0 after an MPI gather. At most one frame per step.
     max gamma > G2 (or max sigma > S2): the run or minimization stops after
       the current step, like fix halt ... error continue; `run` returns
       normally and a following run command works.
   A keyword left out is off. select/sigma_select need file.

   Output, for variables/thermo (f_ID) and the Python interface:
     scalar: largest max gamma seen since the run started
     vector: [1] largest max gamma since the run started, [2] largest max
       sigma (eV/A) since the run started, [3] frames written (all runs),
       [4] 1 if this run was stopped by break/sigma_break else 0,
       [5] max gamma of the last check, [6] max sigma of the last check,
       [7] step of the last check (-1: none yet)
------------------------------------------------------------------------- */

#include "fix_mlal_extrapolation.h"

#include "atom.h"
#include "comm.h"
#include "domain.h"
#include "error.h"
#include "force.h"
#include "timer.h"
#include "update.h"

#include <algorithm>
#include <cstdio>
#include <mpi.h>
#include <vector>

using namespace LAMMPS_NS;
using namespace FixConst;

FixMLALExtrapolation::FixMLALExtrapolation(LAMMPS *lmp, int narg, char **arg) :
    Fix(lmp, narg, arg), gamma_select(-1), gamma_break(-1), sigma_select(-1), sigma_break(-1),
    last_gamma(0), last_sigma(0), max_gamma(0), max_sigma(0), last_check(-1), last_written(-1), nwritten(0), stopped(0)
{
  if (narg < 4)
    error->all(FLERR, "Usage: fix ID group mlal/extrapolation N [select G] [break G] "
                      "[sigma_select S] [sigma_break S] [file F]");
  nevery = utils::inumeric(FLERR, arg[3], false, lmp);
  if (nevery < 1) error->all(FLERR, "fix mlal/extrapolation: N must be >= 1");
  for (int iarg = 4; iarg < narg; iarg += 2) {
    std::string key = arg[iarg];
    if (iarg + 1 >= narg) error->all(FLERR, "fix mlal/extrapolation: keyword '{}' needs a value", key);
    if (key == "file") {
      filename = arg[iarg + 1];
      continue;
    }
    double v = utils::numeric(FLERR, arg[iarg + 1], false, lmp);
    if (v < 0) error->all(FLERR, "fix mlal/extrapolation: {} must be >= 0", key);
    if (key == "select") gamma_select = v;
    else if (key == "break") gamma_break = v;
    else if (key == "sigma_select") sigma_select = v;
    else if (key == "sigma_break") sigma_break = v;
    else
      error->all(FLERR, "fix mlal/extrapolation: unknown keyword '{}'; expected select, break, "
                        "sigma_select, sigma_break or file", key);
  }
  if ((gamma_select >= 0 || sigma_select >= 0) && filename.empty())
    error->all(FLERR, "fix mlal/extrapolation: select/sigma_select need 'file F' to write to");
  scalar_flag = 1;
  vector_flag = 1;
  size_vector = 7;
  global_freq = 1;
  extscalar = 0;
  extvector = 0;
}

int FixMLALExtrapolation::setmask()
{
  return END_OF_STEP | MIN_POST_FORCE;
}

PairMLAL *FixMLALExtrapolation::current_pair()
{
  auto pair = dynamic_cast<PairMLAL *>(force->pair_match("mlal", 1));
  if (!pair) error->all(FLERR, "fix mlal/extrapolation requires pair_style mlal");
  return pair;
}

void FixMLALExtrapolation::init()
{
  PairMLAL *pair = current_pair();
  if (pair->uncertainty_mode() == PairMLAL::UNC_NO)
    error->all(FLERR, "fix mlal/extrapolation needs gamma, but pair_style mlal has 'uncertainty no'");
  pair->add_requester(this);
  stopped = 0;
  max_gamma = max_sigma = 0.0;
}

void FixMLALExtrapolation::setup(int)
{
  if (update->ntimestep % nevery == 0) check();
}

void FixMLALExtrapolation::min_setup(int)
{
  if (update->ntimestep % nevery == 0) check();
}

void FixMLALExtrapolation::end_of_step()
{
  check();
}

void FixMLALExtrapolation::min_post_force(int)
{
  if (update->ntimestep % nevery == 0) check();
}

void FixMLALExtrapolation::post_run()
{
  // like fix halt 'error continue': later runs are not cut short
  if (stopped) timer->reset_timeout();
}

void FixMLALExtrapolation::check()
{
  PairMLAL *pair = current_pair();
  pair->ensure_uncertainty("fix mlal/extrapolation");
  const double *g = pair->atom_gamma(), *s = pair->atom_sigma();
  double local[2] = {0.0, 0.0}, global[2];
  for (int i = 0; i < atom->nlocal; i++)
    if (atom->mask[i] & groupbit) {
      local[0] = std::max(local[0], g[i]);
      local[1] = std::max(local[1], s[i]);
    }
  MPI_Allreduce(local, global, 2, MPI_DOUBLE, MPI_MAX, world);
  last_gamma = global[0];
  last_sigma = global[1];
  last_check = update->ntimestep;
  max_gamma = std::max(max_gamma, last_gamma);
  max_sigma = std::max(max_sigma, last_sigma);

  bool select = (gamma_select >= 0 && last_gamma > gamma_select) ||
      (sigma_select >= 0 && last_sigma > sigma_select);
  if (select && last_written != update->ntimestep) {
    write_frame(pair, last_gamma, last_sigma);
    last_written = update->ntimestep;
    nwritten++;
  }
  bool brk = (gamma_break >= 0 && last_gamma > gamma_break) ||
      (sigma_break >= 0 && last_sigma > sigma_break);
  if (brk && !stopped) {
    stopped = 1;
    timer->force_timeout();
    if (comm->me == 0)
      utils::logmesg(lmp, "fix mlal/extrapolation: stopping at step {}: max gamma {:.6g} (break {}), "
                          "max sigma {:.6g} eV/A (sigma_break {})\n",
                     update->ntimestep, last_gamma, gamma_break, last_sigma, sigma_break);
  }
}

/* one extended-XYZ frame of the whole cell, gathered on rank 0 and sorted by atom ID */

void FixMLALExtrapolation::write_frame(PairMLAL *pair, double gmax, double smax)
{
  const int W = 7;    // id, type, x, y, z, gamma, sigma
  int nlocal = atom->nlocal;
  std::vector<double> mine((size_t) W * nlocal);
  const double *g = pair->atom_gamma(), *s = pair->atom_sigma();
  for (int i = 0; i < nlocal; i++) {
    double *p = &mine[(size_t) W * i];
    p[0] = (double) atom->tag[i];
    p[1] = (double) atom->type[i];
    for (int c = 0; c < 3; c++) p[2 + c] = atom->x[i][c] - domain->boxlo[c];
    p[5] = g[i];
    p[6] = s[i];
  }
  int nprocs = comm->nprocs, me = comm->me;
  int count = W * nlocal;
  std::vector<int> counts(nprocs), displs(nprocs);
  MPI_Gather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, world);
  int total = 0;
  if (me == 0)
    for (int p = 0; p < nprocs; p++) {
      displs[p] = total;
      total += counts[p];
    }
  std::vector<double> all(me == 0 ? std::max(total, 1) : 1);
  MPI_Gatherv(mine.data(), count, MPI_DOUBLE, all.data(), counts.data(), displs.data(), MPI_DOUBLE,
              0, world);
  int ok = 1;
  if (me == 0) {
    int n = total / W;
    std::vector<int> order(n);
    for (int a = 0; a < n; a++) order[a] = a;
    std::sort(order.begin(), order.end(),
              [&](int a, int b) { return all[(size_t) W * a] < all[(size_t) W * b]; });
    FILE *fp = fopen(filename.c_str(), "a");
    if (!fp) {
      ok = 0;
    } else {
      double xy = domain->triclinic ? domain->xy : 0.0, xz = domain->triclinic ? domain->xz : 0.0,
             yz = domain->triclinic ? domain->yz : 0.0;
      fprintf(fp, "%d\n", n);
      fprintf(fp,
              "Lattice=\"%.12g 0 0 %.12g %.12g 0 %.12g %.12g %.12g\" "
              "Properties=species:S:1:pos:R:3:gamma:R:1:sigma:R:1:lammps_id:I:1:lammps_type:I:1 "
              "pbc=\"%c %c %c\" step=%lld gamma_max=%.10g sigma_max=%.10g\n",
              domain->xprd, xy, domain->yprd, xz, yz, domain->zprd, domain->xperiodic ? 'T' : 'F',
              domain->yperiodic ? 'T' : 'F', domain->zperiodic ? 'T' : 'F',
              (long long) update->ntimestep, gmax, smax);
      for (int a : order) {
        const double *p = &all[(size_t) W * a];
        std::string el = pair->element_of_type((int) p[1]);
        if (el == "NULL") el = "X";
        fprintf(fp, "%s %.12f %.12f %.12f %.10g %.10g %d %d\n", el.c_str(), p[2], p[3], p[4], p[5],
                p[6], (int) p[0], (int) p[1]);
      }
      fclose(fp);
    }
  }
  MPI_Bcast(&ok, 1, MPI_INT, 0, world);
  if (!ok) error->all(FLERR, "fix mlal/extrapolation: cannot open file {} for appending", filename);
}

double FixMLALExtrapolation::compute_scalar()
{
  return max_gamma;
}

double FixMLALExtrapolation::compute_vector(int n)
{
  switch (n) {
    case 0: return max_gamma;
    case 1: return max_sigma;
    case 2: return nwritten;
    case 3: return stopped;
    case 4: return last_gamma;
    case 5: return last_sigma;
    default: return (double) last_check;
  }
}
