// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test, MerkleTrees} from "./lib/Test.sol";
import {CumulativeDistributor} from "../src/CumulativeDistributor.sol";
import {TestToken} from "../src/TestToken.sol";

/// @notice A token whose transfer returns false without moving anything.
contract FalseToken {
    function balanceOf(address) external pure returns (uint256) {
        return type(uint128).max;
    }

    function transfer(address, uint256) external pure returns (bool) {
        return false;
    }
}

/// @notice A token whose transfer reverts.
contract RevertingToken {
    function balanceOf(address) external pure returns (uint256) {
        return type(uint128).max;
    }

    function transfer(address, uint256) external pure returns (bool) {
        revert("no transfers");
    }
}

/// @notice A token whose transfer returns no data at all (as some widely used tokens do).
contract SilentToken {
    mapping(address => uint256) public balanceOf;

    function mint(address to, uint256 amount) external {
        balanceOf[to] += amount;
    }

    function transfer(address to, uint256 amount) external {
        balanceOf[msg.sender] -= amount;
        balanceOf[to] += amount;
    }
}

contract CumulativeDistributorTest is Test {
    // The same declarations as the contract's, for expectEmit.
    event RootSet(uint256 indexed epoch, bytes32 root);
    event Claimed(address indexed account, uint256 amount, uint256 cumulativeAmount, uint256 indexed epoch);
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);

    address internal constant OWNER = address(0x0A11CE);
    address internal constant STRANGER = address(0xBAD);
    address internal constant ALICE = address(0xA1);
    address internal constant BOB = address(0xB0B);
    address internal constant CAROL = address(0xCA401);
    address internal constant DAVE = address(0xDA7E);
    uint256 internal constant FUNDS = 1_000_000 ether;

    TestToken internal token;
    CumulativeDistributor internal distributor;

    function setUp() public {
        token = new TestToken();
        distributor = new CumulativeDistributor(address(token), OWNER);
        token.mint(address(distributor), FUNDS);
    }

    // ---- helpers ----

    /// Epoch 1 earnings (cumulative): four accounts.
    function epoch1() internal pure returns (address[] memory accounts, uint256[] memory amounts) {
        accounts = new address[](4);
        amounts = new uint256[](4);
        (accounts[0], amounts[0]) = (ALICE, 100 ether);
        (accounts[1], amounts[1]) = (BOB, 250 ether);
        (accounts[2], amounts[2]) = (CAROL, 1);
        (accounts[3], amounts[3]) = (DAVE, 7 ether);
    }

    /// Epoch 2 earnings (cumulative): Alice and Bob earned more, Carol nothing new, Dave is absent.
    function epoch2() internal pure returns (address[] memory accounts, uint256[] memory amounts) {
        accounts = new address[](3);
        amounts = new uint256[](3);
        (accounts[0], amounts[0]) = (ALICE, 160 ether);
        (accounts[1], amounts[1]) = (BOB, 400 ether);
        (accounts[2], amounts[2]) = (CAROL, 1);
    }

    function post(uint256 epochNumber, address[] memory accounts, uint256[] memory amounts)
        internal
        returns (bytes32[] memory tree)
    {
        tree = MerkleTrees.build(accounts, amounts);
        vm.prank(OWNER);
        distributor.setRoot(epochNumber, tree[0]);
    }

    function proof(bytes32[] memory tree, address account, uint256 amount) internal pure returns (bytes32[] memory) {
        return MerkleTrees.proofOf(tree, MerkleTrees.leaf(account, amount));
    }

    function claimFrom(bytes32[] memory tree, address account, uint256 amount) internal {
        distributor.claim(account, amount, tree[0], proof(tree, account, amount));
    }

    // ---- the tree encoding ----

    /// The known vector of DESIGN.md, computed independently with OpenZeppelin's merkle-tree package.
    function test_TreeHelper_MatchesOpenZeppelinKnownVector() public {
        address[] memory accounts = new address[](3);
        uint256[] memory amounts = new uint256[](3);
        (accounts[0], amounts[0]) = (0x1111111111111111111111111111111111111111, 5 ether);
        (accounts[1], amounts[1]) = (0x2222222222222222222222222222222222222222, 2.5 ether);
        (accounts[2], amounts[2]) = (0x70997970C51812dc3A010C7d01b50e0d17dc79C8, 42);
        bytes32[] memory tree = MerkleTrees.build(accounts, amounts);
        assertEq(tree[0], 0x6a6ae7c251e3a925f68d2129d38ca330926fa0f42f4b47f93bbdf1a1824d5464, "known root");

        // And the contract accepts a proof from that tree.
        vm.prank(OWNER);
        distributor.setRoot(1, tree[0]);
        claimFrom(tree, accounts[2], 42);
        assertEq(token.balanceOf(accounts[2]), 42, "paid");
    }

    function test_SingleLeafTree_EmptyProof() public {
        address[] memory accounts = new address[](1);
        uint256[] memory amounts = new uint256[](1);
        (accounts[0], amounts[0]) = (ALICE, 3 ether);
        bytes32[] memory tree = post(1, accounts, amounts);
        assertEq(tree[0], MerkleTrees.leaf(ALICE, 3 ether), "single-leaf root is the leaf");
        distributor.claim(ALICE, 3 ether, tree[0], new bytes32[](0));
        assertEq(token.balanceOf(ALICE), 3 ether, "paid");
    }

    // ---- deployment ----

    function test_Constructor_SetsTokenOwnerAndNoRoot() public view {
        assertEq(distributor.token(), address(token), "token");
        assertEq(distributor.owner(), OWNER, "owner");
        assertEq(distributor.epoch(), 0, "epoch");
        assertEq(distributor.root(), bytes32(0), "root");
    }

    function test_Constructor_EmitsOwnershipTransferred() public {
        // The emitter is the contract being created, whose address is not known yet.
        vm.expectEmit(true, true, true, true);
        emit OwnershipTransferred(address(0), OWNER);
        new CumulativeDistributor(address(token), OWNER);
    }

    // ---- setRoot ----

    function test_SetRoot_OnlyOwner() public {
        vm.prank(STRANGER);
        vm.expectRevert(CumulativeDistributor.NotOwner.selector);
        distributor.setRoot(1, keccak256("root"));
        assertEq(distributor.epoch(), 0, "epoch unchanged");
    }

    function test_SetRoot_EmitsRootSetAndStores() public {
        bytes32 r = keccak256("root 1");
        vm.expectEmit(true, true, true, true, address(distributor));
        emit RootSet(1, r);
        vm.prank(OWNER);
        distributor.setRoot(1, r);
        assertEq(distributor.epoch(), 1, "epoch");
        assertEq(distributor.root(), r, "root");
    }

    function test_SetRoot_EpochMustStrictlyIncrease() public {
        vm.startPrank(OWNER);
        vm.expectRevert(abi.encodeWithSelector(CumulativeDistributor.EpochNotIncreasing.selector, 0, 0));
        distributor.setRoot(0, keccak256("zero epoch"));

        distributor.setRoot(1, keccak256("root 1"));
        vm.expectRevert(abi.encodeWithSelector(CumulativeDistributor.EpochNotIncreasing.selector, 1, 1));
        distributor.setRoot(1, keccak256("root 1 again"));

        distributor.setRoot(5, keccak256("root 5")); // skipping epochs is allowed
        vm.expectRevert(abi.encodeWithSelector(CumulativeDistributor.EpochNotIncreasing.selector, 5, 3));
        distributor.setRoot(3, keccak256("root 3"));
        vm.stopPrank();

        assertEq(distributor.epoch(), 5, "epoch");
        assertEq(distributor.root(), keccak256("root 5"), "root");
    }

    function test_SetRoot_ZeroRootRefused() public {
        vm.prank(OWNER);
        vm.expectRevert(abi.encodeWithSelector(CumulativeDistributor.RootMismatch.selector, bytes32(0), bytes32(0)));
        distributor.setRoot(1, bytes32(0));
        assertEq(distributor.epoch(), 0, "epoch unchanged");
    }

    // ---- claims ----

    function test_Claim_PaysWithValidProof() public {
        (address[] memory accounts, uint256[] memory amounts) = epoch1();
        bytes32[] memory tree = post(1, accounts, amounts);
        for (uint256 i = 0; i < accounts.length; i++) {
            vm.expectEmit(true, true, true, true, address(distributor));
            emit Claimed(accounts[i], amounts[i], amounts[i], 1);
            claimFrom(tree, accounts[i], amounts[i]);
            assertEq(token.balanceOf(accounts[i]), amounts[i], "balance");
            assertEq(distributor.claimed(accounts[i]), amounts[i], "claimed");
        }
        assertEq(token.balanceOf(address(distributor)), FUNDS - 357 ether - 1, "distributor balance");
    }

    function test_Claim_CumulativeAcrossEpochs_PaysOnlyTheDifference() public {
        (address[] memory a1, uint256[] memory m1) = epoch1();
        bytes32[] memory tree1 = post(1, a1, m1);
        claimFrom(tree1, ALICE, 100 ether);
        claimFrom(tree1, BOB, 250 ether);

        (address[] memory a2, uint256[] memory m2) = epoch2();
        bytes32[] memory tree2 = post(2, a2, m2);
        vm.expectEmit(true, true, true, true, address(distributor));
        emit Claimed(ALICE, 60 ether, 160 ether, 2);
        claimFrom(tree2, ALICE, 160 ether);
        claimFrom(tree2, BOB, 400 ether);

        assertEq(token.balanceOf(ALICE), 160 ether, "alice total");
        assertEq(token.balanceOf(BOB), 400 ether, "bob total");
        assertEq(distributor.claimed(ALICE), 160 ether, "alice claimed");

        // Carol earned nothing new in epoch 2 and never claimed epoch 1: her cumulative 1 is still due.
        claimFrom(tree2, CAROL, 1);
        assertEq(token.balanceOf(CAROL), 1, "carol");
        vm.expectRevert(CumulativeDistributor.NothingToClaim.selector);
        claimFrom(tree2, CAROL, 1);
    }

    function test_Claim_SkippingAnEpochPaysEverythingAtOnce() public {
        (address[] memory a1, uint256[] memory m1) = epoch1();
        post(1, a1, m1); // Alice does not claim epoch 1
        (address[] memory a2, uint256[] memory m2) = epoch2();
        bytes32[] memory tree = post(4, a2, m2); // and the owner skipped epochs 2 and 3
        vm.expectEmit(true, true, true, true, address(distributor));
        emit Claimed(ALICE, 160 ether, 160 ether, 4);
        claimFrom(tree, ALICE, 160 ether);
        assertEq(token.balanceOf(ALICE), 160 ether, "alice");
    }

    function test_Claim_OldLeafAgainstNewRoot_InvalidProof() public {
        (address[] memory a1, uint256[] memory m1) = epoch1();
        bytes32[] memory tree1 = post(1, a1, m1);
        (address[] memory a2, uint256[] memory m2) = epoch2();
        bytes32[] memory tree2 = post(2, a2, m2);
        // Dave's epoch-1 leaf and proof with the current root as the expected root.
        bytes32[] memory daveProof = proof(tree1, DAVE, 7 ether);
        vm.expectRevert(CumulativeDistributor.InvalidProof.selector);
        distributor.claim(DAVE, 7 ether, tree2[0], daveProof);
    }

    function test_Claim_WrongAmount_InvalidProof() public {
        (address[] memory accounts, uint256[] memory amounts) = epoch1();
        bytes32[] memory tree = post(1, accounts, amounts);
        bytes32[] memory p = proof(tree, ALICE, 100 ether);
        vm.expectRevert(CumulativeDistributor.InvalidProof.selector);
        distributor.claim(ALICE, 101 ether, tree[0], p);
        vm.expectRevert(CumulativeDistributor.InvalidProof.selector);
        distributor.claim(ALICE, 99 ether, tree[0], p);
        // Another account's leaf: Alice cannot take Bob's amount with Bob's proof.
        bytes32[] memory bobProof = proof(tree, BOB, 250 ether);
        vm.expectRevert(CumulativeDistributor.InvalidProof.selector);
        distributor.claim(ALICE, 250 ether, tree[0], bobProof);
        assertEq(distributor.claimed(ALICE), 0, "nothing claimed");
    }

    function test_Claim_WrongProof_InvalidProof() public {
        (address[] memory accounts, uint256[] memory amounts) = epoch1();
        bytes32[] memory tree = post(1, accounts, amounts);
        bytes32[] memory p = proof(tree, BOB, 250 ether);

        bytes32[] memory tampered = new bytes32[](p.length);
        for (uint256 i = 0; i < p.length; i++) {
            tampered[i] = p[i];
        }
        tampered[0] = bytes32(uint256(tampered[0]) ^ 1);
        vm.expectRevert(CumulativeDistributor.InvalidProof.selector);
        distributor.claim(BOB, 250 ether, tree[0], tampered);

        vm.expectRevert(CumulativeDistributor.InvalidProof.selector);
        distributor.claim(BOB, 250 ether, tree[0], new bytes32[](0));

        bytes32[] memory truncated = new bytes32[](p.length - 1);
        for (uint256 i = 0; i < truncated.length; i++) {
            truncated[i] = p[i];
        }
        vm.expectRevert(CumulativeDistributor.InvalidProof.selector);
        distributor.claim(BOB, 250 ether, tree[0], truncated);

        // An inner node of the tree is not a leaf: the double hash keeps it from passing as one.
        vm.expectRevert(CumulativeDistributor.InvalidProof.selector);
        distributor.claim(address(uint160(uint256(tree[1]))), uint256(tree[2]), tree[0], new bytes32[](0));
    }

    function test_Claim_StaleExpectedRoot_RootMismatch() public {
        (address[] memory a1, uint256[] memory m1) = epoch1();
        bytes32[] memory tree1 = post(1, a1, m1);
        (address[] memory a2, uint256[] memory m2) = epoch2();
        bytes32[] memory tree2 = post(2, a2, m2);
        bytes32[] memory p = proof(tree1, ALICE, 100 ether);
        vm.expectRevert(abi.encodeWithSelector(CumulativeDistributor.RootMismatch.selector, tree2[0], tree1[0]));
        distributor.claim(ALICE, 100 ether, tree1[0], p);
        assertEq(token.balanceOf(ALICE), 0, "nothing paid");
    }

    function test_Claim_BeforeAnyRoot_RootMismatch() public {
        vm.expectRevert(abi.encodeWithSelector(CumulativeDistributor.RootMismatch.selector, bytes32(0), bytes32(0)));
        distributor.claim(ALICE, 0, bytes32(0), new bytes32[](0));
        bytes32 r = MerkleTrees.leaf(ALICE, 1 ether);
        vm.expectRevert(abi.encodeWithSelector(CumulativeDistributor.RootMismatch.selector, bytes32(0), r));
        distributor.claim(ALICE, 1 ether, r, new bytes32[](0));
    }

    function test_Claim_SecondClaimOfSameAmount_NothingToClaim() public {
        (address[] memory accounts, uint256[] memory amounts) = epoch1();
        bytes32[] memory tree = post(1, accounts, amounts);
        claimFrom(tree, BOB, 250 ether);
        bytes32[] memory p = proof(tree, BOB, 250 ether);
        vm.expectRevert(CumulativeDistributor.NothingToClaim.selector);
        distributor.claim(BOB, 250 ether, tree[0], p);
        assertEq(token.balanceOf(BOB), 250 ether, "paid once");
    }

    function test_Claim_ZeroAmountLeaf_NothingToClaim() public {
        address[] memory accounts = new address[](2);
        uint256[] memory amounts = new uint256[](2);
        (accounts[0], amounts[0]) = (ALICE, 0);
        (accounts[1], amounts[1]) = (BOB, 1 ether);
        bytes32[] memory tree = post(1, accounts, amounts);
        bytes32[] memory p = proof(tree, ALICE, 0);
        vm.expectRevert(CumulativeDistributor.NothingToClaim.selector);
        distributor.claim(ALICE, 0, tree[0], p);
    }

    function test_Claim_Underfunded_InsufficientFunds_NothingMarked() public {
        CumulativeDistributor poor = new CumulativeDistributor(address(token), OWNER);
        token.mint(address(poor), 50 ether);
        (address[] memory accounts, uint256[] memory amounts) = epoch1();
        bytes32[] memory tree = MerkleTrees.build(accounts, amounts);
        vm.prank(OWNER);
        poor.setRoot(1, tree[0]);

        bytes32[] memory p = proof(tree, ALICE, 100 ether);
        vm.expectRevert(abi.encodeWithSelector(CumulativeDistributor.InsufficientFunds.selector, 50 ether, 100 ether));
        poor.claim(ALICE, 100 ether, tree[0], p);
        assertEq(poor.claimed(ALICE), 0, "nothing marked claimed");
        assertEq(token.balanceOf(ALICE), 0, "nothing paid, not even part");
        assertEq(token.balanceOf(address(poor)), 50 ether, "funds untouched");

        // Once funded, the same claim goes through in full.
        token.mint(address(poor), 50 ether);
        poor.claim(ALICE, 100 ether, tree[0], p);
        assertEq(token.balanceOf(ALICE), 100 ether, "paid in full");
        assertEq(poor.claimed(ALICE), 100 ether, "claimed");
    }

    function test_Claim_TokenReturnsFalse_TransferFailed() public {
        claimAgainstBrokenToken(address(new FalseToken()));
    }

    function test_Claim_TokenReverts_TransferFailed() public {
        claimAgainstBrokenToken(address(new RevertingToken()));
    }

    function claimAgainstBrokenToken(address broken) internal {
        CumulativeDistributor d = new CumulativeDistributor(broken, OWNER);
        (address[] memory accounts, uint256[] memory amounts) = epoch1();
        bytes32[] memory tree = MerkleTrees.build(accounts, amounts);
        vm.prank(OWNER);
        d.setRoot(1, tree[0]);
        bytes32[] memory p = proof(tree, ALICE, 100 ether);
        vm.expectRevert(CumulativeDistributor.TransferFailed.selector);
        d.claim(ALICE, 100 ether, tree[0], p);
        assertEq(d.claimed(ALICE), 0, "the record is undone with the failed transfer");
    }

    function test_Claim_TokenWithoutReturnValue_Pays() public {
        SilentToken silent = new SilentToken();
        CumulativeDistributor d = new CumulativeDistributor(address(silent), OWNER);
        silent.mint(address(d), 1_000 ether);
        (address[] memory accounts, uint256[] memory amounts) = epoch1();
        bytes32[] memory tree = MerkleTrees.build(accounts, amounts);
        vm.prank(OWNER);
        d.setRoot(1, tree[0]);
        d.claim(ALICE, 100 ether, tree[0], proof(tree, ALICE, 100 ether));
        assertEq(silent.balanceOf(ALICE), 100 ether, "paid");
    }

    function test_Claim_ByThirdParty_PaysTheAccount() public {
        (address[] memory accounts, uint256[] memory amounts) = epoch1();
        bytes32[] memory tree = post(1, accounts, amounts);
        bytes32[] memory p = proof(tree, DAVE, 7 ether);
        vm.prank(STRANGER);
        distributor.claim(DAVE, 7 ether, tree[0], p);
        assertEq(token.balanceOf(DAVE), 7 ether, "dave paid");
        assertEq(token.balanceOf(STRANGER), 0, "submitter not paid");
        assertEq(distributor.claimed(DAVE), 7 ether, "claimed");
    }

    /// Two epochs with arbitrary cumulative amounts: the account ends up with exactly the last total.
    function testFuzz_Claim_PaysExactlyTheCumulativeTotal(uint96 first, uint96 increase) public {
        vm.assume(first > 0 && increase > 0);
        uint256 second = uint256(first) + increase;
        address[] memory accounts = new address[](2);
        uint256[] memory amounts = new uint256[](2);
        (accounts[0], amounts[0]) = (ALICE, first);
        (accounts[1], amounts[1]) = (BOB, 1);
        token.mint(address(distributor), second);
        bytes32[] memory tree1 = post(1, accounts, amounts);
        claimFrom(tree1, ALICE, first);
        amounts[0] = second;
        bytes32[] memory tree2 = post(2, accounts, amounts);
        claimFrom(tree2, ALICE, second);
        assertEq(token.balanceOf(ALICE), second, "total paid");
        assertEq(distributor.claimed(ALICE), second, "claimed");
    }

    // ---- ownership ----

    function test_TransferOwnership() public {
        vm.prank(STRANGER);
        vm.expectRevert(CumulativeDistributor.NotOwner.selector);
        distributor.transferOwnership(STRANGER);

        vm.expectEmit(true, true, true, true, address(distributor));
        emit OwnershipTransferred(OWNER, ALICE);
        vm.prank(OWNER);
        distributor.transferOwnership(ALICE);
        assertEq(distributor.owner(), ALICE, "new owner");

        vm.prank(OWNER);
        vm.expectRevert(CumulativeDistributor.NotOwner.selector);
        distributor.setRoot(1, keccak256("old owner's root"));

        vm.prank(ALICE);
        distributor.setRoot(1, keccak256("new owner's root"));
        assertEq(distributor.root(), keccak256("new owner's root"), "root");
    }

    function test_RenouncedOwnership_ClaimsStillWork() public {
        (address[] memory accounts, uint256[] memory amounts) = epoch1();
        bytes32[] memory tree = post(1, accounts, amounts);
        vm.prank(OWNER);
        distributor.transferOwnership(address(0));
        vm.prank(OWNER);
        vm.expectRevert(CumulativeDistributor.NotOwner.selector);
        distributor.setRoot(2, keccak256("root 2"));
        claimFrom(tree, BOB, 250 ether);
        assertEq(token.balanceOf(BOB), 250 ether, "paid");
    }

    // ---- separate deployments ----

    /// A root posted to one deployment makes nothing claimable on another, even with the same token.
    function test_RootOnOneDeployment_DoesNotValidateOnAnother() public {
        CumulativeDistributor other = new CumulativeDistributor(address(token), OWNER);
        token.mint(address(other), FUNDS);
        (address[] memory accounts, uint256[] memory amounts) = epoch1();
        bytes32[] memory tree = post(1, accounts, amounts);
        bytes32[] memory p = proof(tree, ALICE, 100 ether);
        vm.expectRevert(abi.encodeWithSelector(CumulativeDistributor.RootMismatch.selector, bytes32(0), tree[0]));
        other.claim(ALICE, 100 ether, tree[0], p);

        // The other deployment's own later root does not help the first tree's proofs either.
        (address[] memory a2, uint256[] memory m2) = epoch2();
        bytes32[] memory otherTree = MerkleTrees.build(a2, m2);
        vm.prank(OWNER);
        other.setRoot(7, otherTree[0]);
        vm.expectRevert(CumulativeDistributor.InvalidProof.selector);
        other.claim(ALICE, 100 ether, otherTree[0], p);

        // Claims on one deployment do not mark anything claimed on the other.
        claimFrom(tree, ALICE, 100 ether);
        assertEq(other.claimed(ALICE), 0, "other deployment's record untouched");
    }
}
