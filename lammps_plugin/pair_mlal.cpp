/* ----------------------------------------------------------------------
   mlal: pair_style mlal (examples/lammps/README.md).

     pair_style mlal [nthreads N] [uncertainty yes|no|always]
     pair_coeff * * model.pt El1 El2 ...      (one element per atom type)

   nthreads: torch threads per MPI rank (default 1). uncertainty yes (default):
   gamma/sigma are computed only on steps where compute mlal/atom or fix
   mlal/extrapolation asks for them; no: never (compute/fix refuse to run);
   always: on every force evaluation. Several types may map to one element.

   The model (docs/model_format.md) sees every local atom as a centre and
   every neighbour within the model cutoff, ghosts included, as an edge
   (i, j) with r_ij = x_j - x_i. From dE/dr_ij = g:
       f_i += g, f_j -= g (j may be a ghost), virial -= r (x) g.
   Ghost forces go back to their owners by LAMMPS' reverse communication
   (newton_pair on) or by our own reverse_comm (newton_pair off).

   Uncertainty (gamma/sigma): pair_mlal_uncertainty.cpp; restart files:
   pair_mlal_restart.cpp.
------------------------------------------------------------------------- */

#include "pair_mlal.h"

#include "atom.h"
#include "comm.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "update.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

using namespace LAMMPS_NS;

PairMLAL::PairMLAL(LAMMPS *lmp) : Pair(lmp)
{
  single_enable = 0;
  restartinfo = 1;
  one_coeff = 1;
  manybody_flag = 1;
  no_virial_fdotr_compute = 1;
  centroidstressflag = CENTROID_NOTAVAIL;
  model_loaded = false;
  map = nullptr;
  cut = cutsq_model = 0.0;
  nthreads = 1;
  unc_mode = UNC_YES;
  unc_step = force_step = -1;
  gmax_all = smax_all = esigma_all = 0.0;
  comm_mode = COMM_F;
  comm_reverse = comm_reverse_off = 9;
}

PairMLAL::~PairMLAL()
{
  if (allocated) {
    memory->destroy(setflag);
    memory->destroy(cutsq);
    delete[] map;
  }
}

void PairMLAL::allocate()
{
  allocated = 1;
  int n = atom->ntypes + 1;
  memory->create(setflag, n, n, "pair:setflag");
  memory->create(cutsq, n, n, "pair:cutsq");
  map = new int[n];
  for (int i = 0; i < n; i++) {
    map[i] = -1;
    for (int j = 0; j < n; j++) setflag[i][j] = 0;
  }
  type_element.assign(n, "NULL");
}

/* pair_style mlal [nthreads N] [uncertainty yes|no|always] */

void PairMLAL::settings(int narg, char **arg)
{
  nthreads = 1;
  unc_mode = UNC_YES;
  for (int iarg = 0; iarg < narg; iarg += 2) {
    std::string key = arg[iarg];
    if (key != "nthreads" && key != "uncertainty")
      error->all(FLERR, "Unknown pair_style mlal keyword '{}'; expected nthreads or uncertainty", key);
    if (iarg + 1 >= narg) error->all(FLERR, "pair_style mlal keyword '{}' needs a value", key);
    std::string val = arg[iarg + 1];
    if (key == "nthreads") {
      nthreads = utils::inumeric(FLERR, val, false, lmp);
      if (nthreads < 1) error->all(FLERR, "pair_style mlal nthreads must be >= 1");
    } else if (val == "yes") {
      unc_mode = UNC_YES;
    } else if (val == "no") {
      unc_mode = UNC_NO;
    } else if (val == "always") {
      unc_mode = UNC_ALWAYS;
    } else {
      error->all(FLERR, "pair_style mlal uncertainty must be yes, no or always, not '{}'", val);
    }
  }
  mlal::MlalModel::set_num_threads(nthreads);
}

/* pair_coeff * * model.pt El1 El2 ... (one per atom type; NULL only under hybrid) */

void PairMLAL::coeff(int narg, char **arg)
{
  if (!allocated) allocate();
  int ntypes = atom->ntypes;
  if (narg < 3 || strcmp(arg[0], "*") != 0 || strcmp(arg[1], "*") != 0)
    error->all(FLERR, "Usage: pair_coeff * * model.pt El1 ... El{} (one element per atom type)", ntypes);
  if (narg != 3 + ntypes)
    error->all(FLERR, "pair_coeff * * {} needs {} element names (one per atom type), got {}", arg[2],
               ntypes, narg - 3);
  std::vector<std::string> elements(ntypes + 1, "NULL");
  for (int t = 1; t <= ntypes; t++) {
    elements[t] = arg[2 + t];
    if (elements[t] == "NULL" && force->pair == this)
      error->all(FLERR,
                 "pair_coeff: atom type {} is left unmapped (NULL); pair_style mlal needs an "
                 "element for every type unless it is a pair_style hybrid sub-style",
                 t);
  }
  load_model(arg[2], elements);
}

void PairMLAL::load_model(const std::string &path, const std::vector<std::string> &elements)
{
  try {
    mdl.load(path);
  } catch (const std::exception &e) {
    error->all(FLERR, "pair_style mlal: {}", e.what());
  }
  model_loaded = true;
  restart_missing.clear();
  const auto &species = mdl.species();
  std::string known;
  for (const auto &s : species) known += (known.empty() ? "" : ", ") + s;
  int ntypes = atom->ntypes;
  for (int t = 1; t <= ntypes; t++) {
    type_element[t] = elements[t];
    map[t] = -1;
    if (elements[t] == "NULL") continue;
    auto it = std::find(species.begin(), species.end(), elements[t]);
    if (it == species.end())
      error->all(FLERR, "pair_coeff: element {} (atom type {}) is not in model {}; the model knows {}",
                 elements[t], t, path, known);
    map[t] = (int) (it - species.begin());
  }
  for (int i = 1; i <= ntypes; i++)
    for (int j = 1; j <= ntypes; j++) setflag[i][j] = (map[i] >= 0 && map[j] >= 0) ? 1 : 0;
  cut = mdl.cutoff();
  cutsq_model = cut * cut;
  int K = mdl.n_members();
  comm_reverse = comm_reverse_off = std::max(9, 3 * K);
  unc_step = -1;
  if (comm->me == 0)
    utils::logmesg(lmp, "pair_style mlal: loaded {} (species {}; cutoff {} A; {} members; {})\n",
                   path, known, cut, K, mdl.float64() ? "float64" : "float32");
}

void PairMLAL::init_style()
{
  if (!model_loaded && !restart_missing.empty())
    error->all(FLERR, "pair_style mlal: the model file {} named in the restart file is missing; "
               "give pair_coeff * * model.pt El ... after read_restart", restart_missing);
  if (!model_loaded) error->all(FLERR, "pair_style mlal: no model loaded; use pair_coeff * * model.pt ...");
  if (strcmp(update->unit_style, "metal") != 0)
    error->all(FLERR, "pair_style mlal requires 'units metal' (eV, Angstrom), not '{}'",
               update->unit_style);
  neighbor->add_request(this, NeighConst::REQ_FULL);
  requesters.clear();    // computes and fixes register again in their init()
  mlal::MlalModel::set_num_threads(nthreads);
}

double PairMLAL::init_one(int, int)
{
  return cut;
}

void PairMLAL::setup()
{
  double cutghost = comm->get_comm_cutoff();
  if (cutghost < cut)
    error->all(FLERR, "pair_style mlal: model cutoff {} A exceeds the ghost-atom cutoff {} A; "
               "increase it with comm_modify cutoff", cut, cutghost);
}

/* edges (i, j) for local centre i and any neighbour j within the model cutoff */

void PairMLAL::build_edges()
{
  double **x = atom->x;
  int *type = atom->type;
  int nall = atom->nlocal + atom->nghost;
  species_buf.resize(nall);
  for (int a = 0; a < nall; a++) species_buf[a] = std::max(map[type[a]], 0);
  edge_i.clear();
  edge_j.clear();
  edge_vec.clear();
  for (int ii = 0; ii < list->inum; ii++) {
    int i = list->ilist[ii];
    if (map[type[i]] < 0) continue;
    const int *jlist = list->firstneigh[i];
    int jnum = list->numneigh[i];
    for (int jj = 0; jj < jnum; jj++) {
      int j = jlist[jj] & NEIGHMASK;
      if (map[type[j]] < 0) continue;
      double dx = x[j][0] - x[i][0], dy = x[j][1] - x[i][1], dz = x[j][2] - x[i][2];
      if (dx * dx + dy * dy + dz * dz >= cutsq_model) continue;
      edge_i.push_back(i);
      edge_j.push_back(j);
      edge_vec.push_back(dx);
      edge_vec.push_back(dy);
      edge_vec.push_back(dz);
    }
  }
  size_t E = edge_i.size();
  edge_index.resize(2 * E);
  for (size_t e = 0; e < E; e++) {
    edge_index[e] = edge_i[e];
    edge_index[E + e] = edge_j[e];
  }
}

void PairMLAL::compute(int eflag, int vflag)
{
  ev_init(eflag, vflag);
  int nlocal = atom->nlocal;
  int nall = nlocal + atom->nghost;
  double **f = atom->f;
  int *type = atom->type;
  bool newton = force->newton_pair;
  bool unc = uncertainty_wanted(update->ntimestep);

  // with newton_pair off LAMMPS neither clears nor communicates ghost forces: we do
  if (!newton) {
    for (int a = nlocal; a < nall; a++) f[a][0] = f[a][1] = f[a][2] = 0.0;
    if (vflag_atom)
      for (int a = nlocal; a < nall; a++)
        for (int c = 0; c < 6; c++) vatom[a][c] = 0.0;
  }

  build_edges();
  int64_t E = (int64_t) edge_i.size();
  // a rank may own no atoms (clusters in vacuum): nothing to evaluate, but it still
  // takes part in the communication below
  if (nlocal > 0) try {
      mdl.evaluate(species_buf.data(), nall, edge_index.data(), edge_vec.data(), E, nlocal, unc);
    } catch (const std::exception &e) {
      error->one(FLERR, "pair_style mlal: {}", e.what());
    }

  const double *ae = nlocal > 0 ? mdl.atom_energy() : nullptr;
  if (eflag_either)
    for (int i = 0; i < nlocal; i++) {
      if (map[type[i]] < 0) continue;
      if (eflag_global) eng_vdwl += ae[i];
      if (eflag_atom) eatom[i] += ae[i];
    }

  const double *g = nlocal > 0 ? mdl.edge_grad() : nullptr;
  for (int64_t e = 0; e < E; e++) {
    int i = edge_i[e], j = edge_j[e];
    const double *ge = g + 3 * e;
    f[i][0] += ge[0];
    f[i][1] += ge[1];
    f[i][2] += ge[2];
    f[j][0] -= ge[0];
    f[j][1] -= ge[1];
    f[j][2] -= ge[2];
    if (vflag_either) {
      const double *r = &edge_vec[3 * e];
      double v[6] = {-r[0] * ge[0], -r[1] * ge[1], -r[2] * ge[2],
                     -0.5 * (r[0] * ge[1] + r[1] * ge[0]), -0.5 * (r[0] * ge[2] + r[2] * ge[0]),
                     -0.5 * (r[1] * ge[2] + r[2] * ge[1])};
      if (vflag_global)
        for (int c = 0; c < 6; c++) virial[c] += v[c];
      if (vflag_atom)
        for (int c = 0; c < 6; c++) {
          vatom[i][c] += 0.5 * v[c];
          vatom[j][c] += 0.5 * v[c];
        }
    }
  }

  if (!newton) {
    comm_mode = vflag_atom ? COMM_FV : COMM_F;
    comm->reverse_comm(this, vflag_atom ? 9 : 3);
  }
  if (unc) compute_uncertainty(nlocal, nall);
  force_step = update->ntimestep;
  force_nlocal = nlocal;
  snapshot(force_x);
}

/* reverse communication: ghost forces (newton off), ghost per-atom virial, member forces */

int PairMLAL::pack_reverse_comm(int n, int first, double *buf)
{
  int m = 0, last = first + n;
  if (comm_mode == COMM_MEMBERS) {
    int w = 3 * mdl.n_members();
    for (int i = first; i < last; i++)
      for (int c = 0; c < w; c++) buf[m++] = fmember[(size_t) i * w + c];
    return m;
  }
  double **f = atom->f;
  for (int i = first; i < last; i++) {
    buf[m++] = f[i][0];
    buf[m++] = f[i][1];
    buf[m++] = f[i][2];
    if (comm_mode == COMM_FV)
      for (int c = 0; c < 6; c++) buf[m++] = vatom[i][c];
  }
  return m;
}

void PairMLAL::unpack_reverse_comm(int n, int *list, double *buf)
{
  int m = 0;
  if (comm_mode == COMM_MEMBERS) {
    int w = 3 * mdl.n_members();
    for (int ii = 0; ii < n; ii++) {
      double *fi = &fmember[(size_t) list[ii] * w];
      for (int c = 0; c < w; c++) fi[c] += buf[m++];
    }
    return;
  }
  double **f = atom->f;
  for (int ii = 0; ii < n; ii++) {
    int j = list[ii];
    f[j][0] += buf[m++];
    f[j][1] += buf[m++];
    f[j][2] += buf[m++];
    if (comm_mode == COMM_FV)
      for (int c = 0; c < 6; c++) vatom[j][c] += buf[m++];
  }
}

double PairMLAL::memory_usage()
{
  double bytes = Pair::memory_usage();
  bytes += (double) species_buf.capacity() * sizeof(int64_t) + edge_index.capacity() * sizeof(int64_t);
  bytes += (double) (edge_vec.capacity() + fmember.capacity()) * sizeof(double);
  bytes += (double) (edge_i.capacity() + edge_j.capacity()) * sizeof(int);
  bytes += (double) (gamma_atom.capacity() + sigma_atom.capacity() + esigma_atom.capacity()) * sizeof(double);
  return bytes;
}
