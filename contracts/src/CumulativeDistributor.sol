// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @notice The two ERC-20 functions the distributor calls.
interface IERC20Like {
    function balanceOf(address) external view returns (uint256);
    function transfer(address, uint256) external returns (bool);
}

/// @title CumulativeDistributor
/// @notice Pays Tributary earnings in one ERC-20 token, epoch by epoch, against a Merkle root of
/// cumulative totals. Each epoch the owner posts the root of a tree whose leaves are
/// (account, cumulativeAmount): everything the account has earned since the start, not just in
/// that epoch. A claim proves one leaf and is paid `cumulativeAmount - claimed[account]`, so an
/// account may skip epochs and collect everything later in one claim, and can never be paid twice
/// for the same earnings.
///
/// Leaf encoding (OpenZeppelin StandardMerkleTree, types ["address","uint256"]):
/// `leaf = keccak256(bytes.concat(keccak256(abi.encode(account, cumulativeAmount))))`; inner nodes
/// hash the smaller child first, so a proof is a plain list of siblings with no left/right flags.
///
/// @dev Why a root posted to one deployment can never make a claim valid on another chain or on
/// another contract:
///  - Roots live only in this deployment's own storage (`root`, `epoch`) and only this deployment's
///    `owner` can write them, through `setRoot`. Nothing is read from any other contract or chain.
///  - A claim is checked against this deployment's own `root` and paid against this deployment's own
///    `claimed` map, out of this deployment's own token balance. A proof that is valid for a root
///    posted somewhere else proves nothing here unless this owner posted that same root here too.
///  - `setRoot` transactions are EIP-155 signed (the chain id is inside the signature) and addressed
///    to one contract, so one cannot be replayed on another chain or against another deployment.
///  - `expectedRoot` binds a claim to the epoch the claimant saw: if the owner has moved on to a new
///    root, the claim reverts with `RootMismatch` instead of being judged against a tree the
///    claimant never looked at.
contract CumulativeDistributor {
    /// @notice The ERC-20 token earnings are paid in.
    address public immutable token;
    /// @notice The only account that may post roots and hand over ownership.
    address public owner;
    /// @notice The last epoch whose root was set; 0 means no root yet.
    uint256 public epoch;
    /// @notice The current root; zero until the first `setRoot`.
    bytes32 public root;
    /// @notice Cumulative amount already paid to each account.
    mapping(address => uint256) public claimed;

    event RootSet(uint256 indexed epoch, bytes32 root);
    event Claimed(address indexed account, uint256 amount, uint256 cumulativeAmount, uint256 indexed epoch);
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);

    error NotOwner();
    error EpochNotIncreasing(uint256 current, uint256 given);
    /// @dev Also raised by `setRoot` for a zero root (`given` = 0): zero is the "no root yet" marker.
    error RootMismatch(bytes32 current, bytes32 expected);
    error InvalidProof();
    error NothingToClaim();
    error InsufficientFunds(uint256 available, uint256 due);
    error TransferFailed();

    constructor(address token_, address owner_) {
        token = token_;
        owner = owner_;
        emit OwnershipTransferred(address(0), owner_);
    }

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner();
        _;
    }

    /// @notice Posts the root of epoch `epoch_`, which must be greater than the last one (epochs
    /// may be skipped). `root_` must not be zero.
    function setRoot(uint256 epoch_, bytes32 root_) external onlyOwner {
        uint256 current = epoch;
        if (epoch_ <= current) revert EpochNotIncreasing(current, epoch_);
        if (root_ == bytes32(0)) revert RootMismatch(root, root_);
        epoch = epoch_;
        root = root_;
        emit RootSet(epoch_, root_);
    }

    /// @notice Pays `account` what the current root owes it beyond what it was already paid.
    /// Anyone may submit the claim; the tokens always go to `account`.
    /// @param cumulativeAmount The account's total earnings in the current root's leaf.
    /// @param expectedRoot The root the proof was built against; must equal the current root.
    /// @param proof The sibling hashes from the leaf up to the root.
    function claim(address account, uint256 cumulativeAmount, bytes32 expectedRoot, bytes32[] calldata proof)
        external
    {
        bytes32 current = root;
        if (expectedRoot != current || current == bytes32(0)) revert RootMismatch(current, expectedRoot);

        bytes32 node = keccak256(bytes.concat(keccak256(abi.encode(account, cumulativeAmount))));
        for (uint256 i; i < proof.length;) {
            node = _hashPair(node, proof[i]);
            unchecked {
                ++i;
            }
        }
        if (node != current) revert InvalidProof();

        uint256 paid = claimed[account];
        if (cumulativeAmount <= paid) revert NothingToClaim();
        uint256 due;
        unchecked {
            due = cumulativeAmount - paid;
        }
        uint256 available = IERC20Like(token).balanceOf(address(this));
        if (available < due) revert InsufficientFunds(available, due);

        // Effects before the interaction: the claim is recorded before any token moves.
        claimed[account] = cumulativeAmount;
        emit Claimed(account, due, cumulativeAmount, epoch);

        // A token that returns nothing counts as success (some widely used tokens do not return a
        // bool); one that reverts or returns false fails the whole claim, which undoes the record.
        (bool ok, bytes memory ret) = token.call(abi.encodeCall(IERC20Like.transfer, (account, due)));
        if (!ok || (ret.length != 0 && (ret.length < 32 || !abi.decode(ret, (bool))))) revert TransferFailed();
    }

    /// @notice Hands the owner role to `newOwner`. The zero address renounces it: no root can be
    /// posted after that, while claims against the last root keep working.
    function transferOwnership(address newOwner) external onlyOwner {
        emit OwnershipTransferred(owner, newOwner);
        owner = newOwner;
    }

    /// @dev keccak256 of the pair with the smaller word first (the commutative hash of the tree).
    function _hashPair(bytes32 a, bytes32 b) private pure returns (bytes32 h) {
        assembly ("memory-safe") {
            switch lt(a, b)
            case 1 {
                mstore(0x00, a)
                mstore(0x20, b)
            }
            default {
                mstore(0x00, b)
                mstore(0x20, a)
            }
            h := keccak256(0x00, 0x40)
        }
    }
}
